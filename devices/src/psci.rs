//! The PSCI firmware interface an Arm guest calls through HVC or SMC (Arm DEN 0022, PSCI
//! 1.1: function IDs §5.1, return codes §5.2.2), answered by the paravisor instead of
//! firmware: the guest's CPUs are the paravisor's to start, and its power-off ends the run.

/// Function IDs (SMC64 forms where a 64-bit one exists).
pub const VERSION: u32 = 0x8400_0000;
pub const CPU_OFF: u32 = 0x8400_0002;
pub const CPU_ON: u32 = 0xc400_0003;
pub const CPU_ON_32: u32 = 0x8400_0003;
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
/// `is_running(cpu)` whether one has been started, `in_ram(address)` whether an entry point
/// is guest RAM. Returns X0 and what to do.
pub fn call(
    function: u32,
    args: [u64; 3],
    cpus: usize,
    is_running: impl Fn(usize) -> bool,
    in_ram: impl Fn(u64) -> bool,
) -> (u64, Effect) {
    match function {
        VERSION => (VERSION_1_0, Effect::None),
        FEATURES => {
            let supported = [
                VERSION,
                CPU_OFF,
                CPU_ON,
                CPU_ON_32,
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
            } else if is_running(cpu) {
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
            |cpu| cpu == 0,
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
    fn power() {
        assert_eq!(ask(SYSTEM_OFF, [0; 3]), (SUCCESS, Effect::PowerOff));
        assert_eq!(ask(SYSTEM_RESET, [0; 3]), (SUCCESS, Effect::Reset));
        assert_eq!(ask(CPU_OFF, [0; 3]), (SUCCESS, Effect::CpuOff));
    }
}
