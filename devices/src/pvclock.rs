//! KVM's paravirtual clock ABI (Linux `Documentation/virt/kvm/x86/cpuid.rst`, `msr.rst`): the
//! CPUID leaves that announce it and the `pvclock_vcpu_time_info` a hypervisor writes into the
//! guest's RAM, from which the guest reads nanoseconds and the TSC's rate.

/// CPUID leaves: the signature and highest leaf, then the features.
pub const SIGNATURE_LEAF: u32 = 0x4000_0000;
pub const FEATURES_LEAF: u32 = 0x4000_0001;
/// "KVMKVMKVM\0\0\0" as EBX, ECX, EDX.
const SIGNATURE: [u32; 3] = [0x4b4d_564b, 0x564b_4d56, 0x0000_004d];
/// KVM_FEATURE_CLOCKSOURCE2 (bit 3) and KVM_FEATURE_CLOCKSOURCE_STABLE_BIT (bit 24).
pub const FEATURES: u32 = (1 << 3) | (1 << 24);

/// MSR_KVM_WALL_CLOCK_NEW and MSR_KVM_SYSTEM_TIME_NEW.
pub const MSR_WALL_CLOCK: u32 = 0x4b56_4d00;
pub const MSR_SYSTEM_TIME: u32 = 0x4b56_4d01;
/// MSR_KVM_SYSTEM_TIME_NEW's enable bit; the rest is the structure's address.
pub const SYSTEM_TIME_ENABLE: u64 = 1;
/// `pvclock_vcpu_time_info` and `pvclock_wall_clock` sizes.
pub const TIME_INFO_LEN: usize = 32;
pub const WALL_CLOCK_LEN: usize = 12;
/// PVCLOCK_TSC_STABLE_BIT: one clock on every CPU, no per-CPU correction needed.
const TSC_STABLE: u8 = 1 << 0;
/// An even version: the structure is not being updated.
const STABLE_VERSION: u32 = 2;

/// The answer for `leaf` of the two leaves above.
pub fn cpuid(leaf: u32) -> Option<[u32; 4]> {
    match leaf {
        SIGNATURE_LEAF => Some([FEATURES_LEAF, SIGNATURE[0], SIGNATURE[1], SIGNATURE[2]]),
        FEATURES_LEAF => Some([FEATURES, 0, 0, 0]),
        _ => None,
    }
}

/// Whether the guest may place a time-info structure at `address`: 4-byte aligned and not
/// crossing a page (msr.rst).
pub fn time_info_address_ok(address: u64) -> bool {
    address.is_multiple_of(4) && address % 4096 + TIME_INFO_LEN as u64 <= 4096
}

/// `pvclock_vcpu_time_info` for a `tsc_hz` TSC that read `tsc_epoch` at system time 0:
/// version, pad, tsc_timestamp, system_time, tsc_to_system_mul, tsc_shift, flags, pad.
pub fn time_info(tsc_hz: u64, tsc_epoch: u64) -> [u8; TIME_INFO_LEN] {
    let (mul, shift) = time_scale(tsc_hz);
    let mut info = [0u8; TIME_INFO_LEN];
    info[0..4].copy_from_slice(&STABLE_VERSION.to_le_bytes());
    info[8..16].copy_from_slice(&tsc_epoch.to_le_bytes());
    info[24..28].copy_from_slice(&mul.to_le_bytes());
    info[28] = shift as u8;
    info[29] = TSC_STABLE;
    info
}

/// `pvclock_wall_clock` of the epoch (version, seconds 0, nanoseconds 0).
pub fn wall_clock() -> [u8; WALL_CLOCK_LEN] {
    let mut clock = [0u8; WALL_CLOCK_LEN];
    clock[0..4].copy_from_slice(&STABLE_VERSION.to_le_bytes());
    clock
}

/// The multiplier and shift that turn ticks of a `tsc_hz` TSC into nanoseconds as pvclock
/// computes them, `ns = ((ticks << shift, or >> -shift) * mul) >> 32`: the first shift,
/// counting up, whose multiplier fits 32 bits, which is the largest (most precise) one.
pub fn time_scale(tsc_hz: u64) -> (u32, i8) {
    for shift in -31i8..=31 {
        let scaled = if shift < 0 {
            tsc_hz >> -shift
        } else {
            tsc_hz.checked_shl(shift as u32).unwrap_or(0)
        };
        if scaled == 0 {
            continue;
        }
        if let Ok(mul) = u32::try_from((1_000_000_000u128 << 32) / u128::from(scaled)) {
            return (mul, shift);
        }
    }
    (u32::MAX, 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What a guest computes from the structure (Linux `pvclock_scale_delta`).
    fn guest_ns(info: &[u8; TIME_INFO_LEN], tsc: u64) -> u64 {
        let epoch = u64::from_le_bytes(info[8..16].try_into().unwrap());
        let mul = u32::from_le_bytes(info[24..28].try_into().unwrap());
        let shift = info[28] as i8;
        let delta = tsc - epoch;
        let delta = if shift < 0 {
            delta >> -shift
        } else {
            delta << shift
        };
        ((u128::from(delta) * u128::from(mul)) >> 32) as u64
    }

    /// Linux `pvclock_tsc_khz`.
    fn guest_tsc_khz(info: &[u8; TIME_INFO_LEN]) -> u64 {
        let mul = u32::from_le_bytes(info[24..28].try_into().unwrap());
        let shift = info[28] as i8;
        let khz = (1_000_000u64 << 32) / u64::from(mul);
        if shift < 0 {
            khz << -shift
        } else {
            khz >> shift
        }
    }

    #[test]
    fn the_guest_reads_the_tsc_rate_and_time_back() {
        for hz in [
            1_000_000u64,
            100_000_000,
            999_999_999,
            2_440_000_000,
            5_000_000_000,
        ] {
            let info = time_info(hz, 1000);
            let khz = guest_tsc_khz(&info);
            assert!(
                khz.abs_diff(hz / 1000) * 10_000 <= hz / 1000,
                "{hz}: {khz} kHz"
            );
            // One second of ticks is one second, within 100 ppm.
            let ns = guest_ns(&info, 1000 + hz);
            assert!(ns.abs_diff(1_000_000_000) <= 100_000, "{hz}: {ns} ns");
            assert_eq!(info[0] % 2, 0, "an even version: not mid-update");
            assert_eq!(info[29], TSC_STABLE);
        }
    }

    #[test]
    fn the_multiplier_is_the_most_precise_that_fits() {
        let (mul, shift) = time_scale(2_440_000_000);
        assert_eq!(shift, -1);
        assert!(mul >= 1 << 31);
        // No TSC at all still gives an answer, not a panic.
        assert_eq!(time_scale(0), (u32::MAX, 31));
    }

    #[test]
    fn the_signature_spells_kvm() {
        let [max, b, c, d] = cpuid(SIGNATURE_LEAF).unwrap();
        assert_eq!(max, FEATURES_LEAF);
        let mut name = [0u8; 12];
        for (i, word) in [b, c, d].iter().enumerate() {
            name[4 * i..4 * i + 4].copy_from_slice(&word.to_le_bytes());
        }
        assert_eq!(&name, b"KVMKVMKVM\0\0\0");
        assert_eq!(cpuid(0x4000_0002), None);
    }

    #[test]
    fn misplaced_structures_are_refused() {
        assert!(time_info_address_ok(0x1000));
        assert!(time_info_address_ok(0x1fe0));
        assert!(!time_info_address_ok(0x1fe4));
        assert!(!time_info_address_ok(0x1002));
    }
}
