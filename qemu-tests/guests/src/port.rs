//! Port I/O instructions, in every width and string form the escape guest tries.

use core::arch::asm;

/// # Safety
/// `port` must be a device the guest may read.
pub unsafe fn inb(port: u16) -> u8 {
    let value: u8;
    // SAFETY: the caller vouches for the port.
    unsafe { asm!("in al, dx", in("dx") port, out("al") value, options(nomem, nostack)) };
    value
}

/// # Safety
/// `port` must be a device the guest may write.
pub unsafe fn outb(port: u16, value: u8) {
    // SAFETY: the caller vouches for the port.
    unsafe { asm!("out dx, al", in("dx") port, in("al") value, options(nomem, nostack)) };
}

/// # Safety
/// As [`inb`].
pub unsafe fn inw(port: u16) -> u16 {
    let value: u16;
    // SAFETY: the caller vouches for the port.
    unsafe { asm!("in ax, dx", in("dx") port, out("ax") value, options(nomem, nostack)) };
    value
}

/// # Safety
/// As [`outb`].
pub unsafe fn outl(port: u16, value: u32) {
    // SAFETY: the caller vouches for the port.
    unsafe { asm!("out dx, eax", in("dx") port, in("eax") value, options(nomem, nostack)) };
}

/// # Safety
/// As [`inb`].
pub unsafe fn inl(port: u16) -> u32 {
    let value: u32;
    // SAFETY: the caller vouches for the port.
    unsafe { asm!("in eax, dx", in("dx") port, out("eax") value, options(nomem, nostack)) };
    value
}

/// `rep outsb`: every byte of `bytes` to `port`.
///
/// # Safety
/// As [`outb`].
pub unsafe fn rep_outsb(port: u16, bytes: &[u8]) {
    // SAFETY: the caller vouches for the port; RSI/RCX describe `bytes`, which is readable.
    unsafe {
        asm!(
            "rep outsb",
            in("dx") port,
            inout("rsi") bytes.as_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack, readonly)
        )
    };
}

/// `rep insb`: fills `bytes` from `port`.
///
/// # Safety
/// As [`inb`].
pub unsafe fn rep_insb(port: u16, bytes: &mut [u8]) {
    // SAFETY: the caller vouches for the port; RDI/RCX describe `bytes`, which is writable.
    unsafe {
        asm!(
            "rep insb",
            in("dx") port,
            inout("rdi") bytes.as_mut_ptr() => _,
            inout("rcx") bytes.len() => _,
            options(nostack)
        )
    };
}
