//! The PSCI firmware interface an Arm guest calls through HVC or SMC (Arm DEN 0022, PSCI
//! 1.1: function IDs §5.1, return codes §5.2.2), answered by the paravisor instead of
//! firmware: the guest's CPUs are the paravisor's to start, and its power-off ends the run.

/// Function IDs (SMC64 forms where a 64-bit one exists).
pub const VERSION: u32 = 0x8400_0000;
pub const CPU_OFF: u32 = 0x8400_0002;
pub const CPU_ON: u32 = 0xc400_0003;
pub const CPU_ON_32: u32 = 0x8400_0003;
pub const AFFINITY_INFO: u32 = 0xc400_0004;
pub const AFFINITY_INFO_32: u32 = 0x8400_0004;
pub const MIGRATE_INFO_TYPE: u32 = 0x8400_0006;
pub const SYSTEM_OFF: u32 = 0x8400_0008;
pub const SYSTEM_RESET: u32 = 0x8400_0009;
pub const FEATURES: u32 = 0x8400_000a;

/// Return codes.
pub const SUCCESS: u64 = 0;
pub const NOT_SUPPORTED: u64 = -1i64 as u64;
pub const INVALID_PARAMETERS: u64 = -2i64 as u64;
pub const ALREADY_ON: u64 = -4i64 as u64;
pub const INVALID_ADDRESS: u64 = -9i64 as u64;

/// PSCI 1.0: major in bits 31:16, minor in 15:0.
pub const VERSION_1_0: u64 = 0x0001_0000;
/// AFFINITY_INFO answers (§5.7.2).
const AFFINITY_ON: u64 = 0;
const AFFINITY_OFF: u64 = 1;
const ON_PENDING: u64 = 2;
/// MIGRATE_INFO_TYPE: no Trusted OS, nothing to migrate (§5.8.2).
const NO_TRUSTED_OS: u64 = 2;
/// Function-ID bit 30: the SMC64 calling convention (SMCCC §2.5).
const SMC64: u32 = 1 << 30;

/// Where a guest CPU stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuPower {
    Off,
    /// Started by CPU_ON, not yet running (ON_PENDING).
    Pending,
    On,
}

/// What the call asks of Parapet beyond its return value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    None,
    /// Start guest CPU `cpu` at `entry` with `context` in x0.
    StartCpu {
        cpu: usize,
        entry: u64,
        context: u64,
    },
    /// This guest CPU stops.
    CpuOff,
    PowerOff,
    Reset,
}

/// Answers PSCI call `function` with `args`; `cpus` is how many guest CPUs exist,
/// `power(cpu)` where one stands, `in_ram(address)` whether an entry point is guest RAM.
/// Returns X0 and what to do. The caller applies a `StartCpu` under the same lock it read
/// `power` under, so two CPUs cannot both start a third.
pub fn call(
    function: u32,
    args: [u64; 3],
    cpus: usize,
    power: impl Fn(usize) -> CpuPower,
    in_ram: impl Fn(u64) -> bool,
) -> (u64, Effect) {
    // The SMC32 forms take 32-bit arguments.
    let args = if function & SMC64 == 0 {
        args.map(|a| a & 0xffff_ffff)
    } else {
        args
    };
    match function {
        VERSION => (VERSION_1_0, Effect::None),
        FEATURES => {
            let supported = [
                VERSION,
                CPU_OFF,
                CPU_ON,
                CPU_ON_32,
                AFFINITY_INFO,
                AFFINITY_INFO_32,
                MIGRATE_INFO_TYPE,
                SYSTEM_OFF,
                SYSTEM_RESET,
                FEATURES,
            ];
            let asked = args[0] as u32;
            let answer = if supported.contains(&asked) {
                SUCCESS
            } else {
                NOT_SUPPORTED
            };
            (answer, Effect::None)
        }
        CPU_ON | CPU_ON_32 => {
            // Guest CPU n has MPIDR affinity n (Aff0; higher levels 0).
            let (target, entry, context) = (args[0] & 0xff_00ff_ffff, args[1], args[2]);
            let cpu = target as usize;
            if target >= cpus as u64 {
                (INVALID_PARAMETERS, Effect::None)
            } else if power(cpu) != CpuPower::Off {
                (ALREADY_ON, Effect::None)
            } else if entry % 4 != 0 || !in_ram(entry) {
                (INVALID_ADDRESS, Effect::None)
            } else {
                (
                    SUCCESS,
                    Effect::StartCpu {
                        cpu,
                        entry,
                        context,
                    },
                )
            }
        }
        AFFINITY_INFO | AFFINITY_INFO_32 => {
            // Level 0 only: one CPU per target.
            let (target, level) = (args[0] & 0xff_00ff_ffff, args[1]);
            if level != 0 || target >= cpus as u64 {
                (INVALID_PARAMETERS, Effect::None)
            } else {
                let answer = match power(target as usize) {
                    CpuPower::Off => AFFINITY_OFF,
                    CpuPower::Pending => ON_PENDING,
                    CpuPower::On => AFFINITY_ON,
                };
                (answer, Effect::None)
            }
        }
        MIGRATE_INFO_TYPE => (NO_TRUSTED_OS, Effect::None),
        CPU_OFF => (SUCCESS, Effect::CpuOff),
        SYSTEM_OFF => (SUCCESS, Effect::PowerOff),
        SYSTEM_RESET => (SUCCESS, Effect::Reset),
        _ => (NOT_SUPPORTED, Effect::None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(function: u32, args: [u64; 3]) -> (u64, Effect) {
        call(
            function,
            args,
            2,
            |cpu| {
                if cpu == 0 {
                    CpuPower::On
                } else {
                    CpuPower::Off
                }
            },
            |a| (0x4400_0000..0x5000_0000).contains(&a),
        )
    }

    #[test]
    fn version_and_features() {
        assert_eq!(ask(VERSION, [0; 3]), (VERSION_1_0, Effect::None));
        assert_eq!(ask(FEATURES, [u64::from(CPU_ON), 0, 0]).0, SUCCESS);
        assert_eq!(ask(FEATURES, [0x8400_0001, 0, 0]).0, NOT_SUPPORTED);
        assert_eq!(ask(0x8600_0000, [0; 3]), (NOT_SUPPORTED, Effect::None));
    }

    #[test]
    fn cpu_on_checks_its_target_and_entry() {
        assert_eq!(
            ask(CPU_ON, [1, 0x4400_2000, 7]),
            (
                SUCCESS,
                Effect::StartCpu {
                    cpu: 1,
                    entry: 0x4400_2000,
                    context: 7
                }
            )
        );
        assert_eq!(ask(CPU_ON, [0, 0x4400_2000, 7]).0, ALREADY_ON);
        assert_eq!(ask(CPU_ON, [2, 0x4400_2000, 7]).0, INVALID_PARAMETERS);
        assert_eq!(ask(CPU_ON, [1 << 8, 0x4400_2000, 7]).0, INVALID_PARAMETERS);
        assert_eq!(
            ask(CPU_ON, [1, 0x4000_0000, 7]).0,
            INVALID_ADDRESS,
            "Parapet's memory"
        );
        assert_eq!(
            ask(CPU_ON, [1, 0x4400_2002, 7]).0,
            INVALID_ADDRESS,
            "misaligned"
        );
    }

    #[test]
    fn affinity_and_migration() {
        assert_eq!(ask(AFFINITY_INFO, [0, 0, 0]).0, AFFINITY_ON);
        assert_eq!(ask(AFFINITY_INFO, [1, 0, 0]).0, AFFINITY_OFF);
        assert_eq!(ask(AFFINITY_INFO, [1, 1, 0]).0, INVALID_PARAMETERS);
        assert_eq!(ask(AFFINITY_INFO, [5, 0, 0]).0, INVALID_PARAMETERS);
        assert_eq!(ask(MIGRATE_INFO_TYPE, [0; 3]).0, NO_TRUSTED_OS);
        // CPU_ON's 32-bit form ignores the upper halves of its arguments.
        assert_eq!(
            ask(CPU_ON_32, [1 | (1 << 32), 0x4400_2000 | (7 << 32), 9]).1,
            Effect::StartCpu {
                cpu: 1,
                entry: 0x4400_2000,
                context: 9
            }
        );
    }

    #[test]
    fn power() {
        assert_eq!(ask(SYSTEM_OFF, [0; 3]), (SUCCESS, Effect::PowerOff));
        assert_eq!(ask(SYSTEM_RESET, [0; 3]), (SUCCESS, Effect::Reset));
        assert_eq!(ask(CPU_OFF, [0; 3]), (SUCCESS, Effect::CpuOff));
    }
}
