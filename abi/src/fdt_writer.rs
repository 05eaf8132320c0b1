//! A flattened device tree writer (Devicetree Specification v0.4, ch. 5, "Flattened Devicetree
//! (DTB) Format"; cited as §5.x), for the trees Parapet hands its aarch64 guests
//! (`arm64_boot`). The reader is `arch::aarch64::fdt`.
//!
//! The blob is laid out as dtc lays it out:
//!
//! ```text
//! 0    header (§5.2): ten big-endian u32s, 40 bytes
//! 40   memory reservation block (§5.3): one all-zero entry (16 bytes), no reservations
//! 56   structure block (§5.4): FDT_BEGIN_NODE / FDT_PROP / FDT_END_NODE ... FDT_END
//! ...  strings block (§5.5): each property name once, NUL-terminated
//! ```
//!
//! §5.1 wants the reservation block 8-byte aligned and the structure block 4-byte aligned;
//! 40 and 56 are both, and every token keeps the structure block a multiple of 4. The strings
//! block needs no alignment and ends the blob.
//!
//! No reservations: what a guest must not use is better left out of its `/memory` nodes
//! altogether, and a `/reserved-memory` node can be written like any other.
//!
//! Building takes no `Result` at each call: the first mistake (a property outside a node, a
//! name the spec forbids, an `end_node` too many, ...) is kept and [`FdtWriter::finish`]
//! returns it, so a tree is written as straight-line code and checked once. Nothing here
//! panics, whatever it is given.

use alloc::collections::{BTreeMap, BTreeSet};
use alloc::string::String;
use alloc::vec::Vec;

/// §5.2: `magic`.
pub const FDT_MAGIC: u32 = 0xd00d_feed;
/// §5.2: the version this writer produces, and the oldest it stays compatible with
/// (`last_comp_version` 16: version 17 only added `size_dt_struct`).
pub const FDT_VERSION: u32 = 17;
pub const FDT_LAST_COMP_VERSION: u32 = 16;

/// Structure block tokens (§5.4.1), big-endian u32s.
pub mod token {
    /// Followed by the node's name, NUL-terminated, padded with zeros to 4 bytes.
    pub const BEGIN_NODE: u32 = 0x1;
    pub const END_NODE: u32 = 0x2;
    /// Followed by `len` and `nameoff` (u32 each), then `len` bytes of value padded to 4.
    pub const PROP: u32 = 0x3;
    pub const NOP: u32 = 0x4;
    pub const END: u32 = 0x9;
}

/// §5.2: the header is ten u32s.
pub const HEADER_LEN: usize = 40;
/// §5.3: one (address, size) pair of u64s; the block ends with an all-zero one.
const RESERVATION_ENTRY_LEN: usize = 16;
const OFF_MEM_RSVMAP: usize = HEADER_LEN;
const OFF_DT_STRUCT: usize = OFF_MEM_RSVMAP + RESERVATION_ENTRY_LEN;

/// Why a tree cannot be written. The first one met is kept.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FdtError {
    /// A property with no node open, or before the root node.
    PropertyOutsideNode,
    /// A property after a child node of the same node: §5.4.2 puts all of a node's
    /// FDT_PROP tokens before its children.
    PropertyAfterChild(String),
    /// The same property twice in one node.
    DuplicateProperty(String),
    /// Two children of one node with the same name (unit address included).
    DuplicateNode(String),
    /// `end_node` with no node open.
    UnbalancedEnd,
    /// `finish` with this many nodes still open.
    UnclosedNodes(usize),
    /// `finish` with no node at all.
    NoRoot,
    /// A second node at the top level: a tree has one root.
    SecondRoot,
    /// The root must be named "" (§5.4.2 and §2.2.1: the root node has no node-name).
    RootNotEmptyName(String),
    /// A node name empty or with characters outside §2.2.1 Table 2.1 (at most one `@`).
    BadNodeName(String),
    /// A property name empty or with characters outside §2.2.4 Table 2.2.
    BadPropertyName(String),
    /// A string value (in property `.0`) with a NUL inside, which would end it early.
    NulInString(String),
    /// A value or the blob longer than a u32 can say.
    TooLarge,
}

impl core::fmt::Display for FdtError {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            Self::PropertyOutsideNode => write!(f, "a property outside any node"),
            Self::PropertyAfterChild(p) => write!(f, "property {p:?} after a child node"),
            Self::DuplicateProperty(p) => write!(f, "property {p:?} twice in one node"),
            Self::DuplicateNode(n) => write!(f, "two sibling nodes named {n:?}"),
            Self::UnbalancedEnd => write!(f, "end_node with no node open"),
            Self::UnclosedNodes(n) => write!(f, "{n} nodes left open"),
            Self::NoRoot => write!(f, "no root node"),
            Self::SecondRoot => write!(f, "a second root node"),
            Self::RootNotEmptyName(n) => write!(f, "the root node is named {n:?}, not \"\""),
            Self::BadNodeName(n) => write!(f, "invalid node name {n:?}"),
            Self::BadPropertyName(n) => write!(f, "invalid property name {n:?}"),
            Self::NulInString(p) => write!(f, "a string in property {p:?} contains a NUL"),
            Self::TooLarge => write!(f, "the tree is larger than 4 GiB"),
        }
    }
}

/// What is kept for each open node, to check the rules §5.4.2 and dtc enforce.
#[derive(Default)]
struct OpenNode {
    has_child: bool,
    /// `nameoff`s of its properties (one per name, so equal names have equal offsets).
    properties: Vec<u32>,
    child_names: BTreeSet<String>,
}

/// Builds a flattened device tree. See the module documentation.
pub struct FdtWriter {
    structure: Vec<u8>,
    strings: Vec<u8>,
    /// Property name to its offset in `strings`: each name is stored once (§5.5 allows
    /// sharing; dtc does the same).
    string_offsets: BTreeMap<String, u32>,
    open: Vec<OpenNode>,
    root_done: bool,
    boot_cpuid_phys: u32,
    error: Option<FdtError>,
}

impl Default for FdtWriter {
    fn default() -> Self {
        Self::new()
    }
}

/// §2.2.1 Table 2.1: characters of a node name (and of its unit address).
fn node_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b',' | b'.' | b'_' | b'+' | b'-')
}

/// §2.2.4 Table 2.2: characters of a property name.
fn property_name_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, b',' | b'.' | b'_' | b'+' | b'?' | b'#' | b'-')
}

/// `node-name@unit-address`, both parts from Table 2.1 and the name non-empty.
fn valid_node_name(name: &str) -> bool {
    let (base, unit) = match name.split_once('@') {
        Some((base, unit)) => (base, Some(unit)),
        None => (name, None),
    };
    !base.is_empty()
        && base.bytes().all(node_name_char)
        && unit.is_none_or(|u| !u.is_empty() && u.bytes().all(node_name_char))
}

fn valid_property_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(property_name_char)
}

fn pad4(v: &mut Vec<u8>) {
    while !v.len().is_multiple_of(4) {
        v.push(0);
    }
}

impl FdtWriter {
    pub fn new() -> Self {
        Self {
            structure: Vec::new(),
            strings: Vec::new(),
            string_offsets: BTreeMap::new(),
            open: Vec::new(),
            root_done: false,
            boot_cpuid_phys: 0,
            error: None,
        }
    }

    /// The header's `boot_cpuid_phys` (§5.2): the `reg` of the CPU that boots. 0 unless set;
    /// Linux on arm64 does not read it.
    pub fn set_boot_cpuid_phys(&mut self, id: u32) {
        self.boot_cpuid_phys = id;
    }

    fn fail(&mut self, e: FdtError) {
        if self.error.is_none() {
            self.error = Some(e);
        }
    }

    fn token(&mut self, t: u32) {
        self.structure.extend_from_slice(&t.to_be_bytes());
    }

    /// Opens a node: the root first, named "", then its children inside it, each named
    /// `name` or `name@unit-address`.
    pub fn begin_node(&mut self, name: &str) {
        if self.error.is_some() {
            return;
        }
        match self.open.last_mut() {
            None if self.root_done => return self.fail(FdtError::SecondRoot),
            None if !name.is_empty() => return self.fail(FdtError::RootNotEmptyName(name.into())),
            None => {}
            Some(_) if !valid_node_name(name) => {
                return self.fail(FdtError::BadNodeName(name.into()))
            }
            Some(parent) => {
                if !parent.child_names.insert(name.into()) {
                    return self.fail(FdtError::DuplicateNode(name.into()));
                }
                parent.has_child = true;
            }
        }
        self.token(token::BEGIN_NODE);
        self.structure.extend_from_slice(name.as_bytes());
        self.structure.push(0);
        pad4(&mut self.structure);
        self.open.push(OpenNode::default());
    }

    /// Closes the node opened last.
    pub fn end_node(&mut self) {
        if self.error.is_some() {
            return;
        }
        if self.open.pop().is_none() {
            return self.fail(FdtError::UnbalancedEnd);
        }
        if self.open.is_empty() {
            self.root_done = true;
        }
        self.token(token::END_NODE);
    }

    /// `name`'s offset in the strings block, adding it if new.
    fn name_offset(&mut self, name: &str) -> Option<u32> {
        if let Some(&off) = self.string_offsets.get(name) {
            return Some(off);
        }
        let off = u32::try_from(self.strings.len()).ok()?;
        self.strings.extend_from_slice(name.as_bytes());
        self.strings.push(0);
        self.string_offsets.insert(name.into(), off);
        Some(off)
    }

    /// A property of the open node whose value is the concatenation of `parts`.
    fn property_parts(&mut self, name: &str, parts: &[&[u8]]) {
        if self.error.is_some() {
            return;
        }
        if !valid_property_name(name) {
            return self.fail(FdtError::BadPropertyName(name.into()));
        }
        let Some(node) = self.open.last() else {
            return self.fail(FdtError::PropertyOutsideNode);
        };
        if node.has_child {
            return self.fail(FdtError::PropertyAfterChild(name.into()));
        }
        let len = parts
            .iter()
            .try_fold(0usize, |sum, p| sum.checked_add(p.len()))
            .and_then(|len| u32::try_from(len).ok());
        let (Some(len), Some(nameoff)) = (len, self.name_offset(name)) else {
            return self.fail(FdtError::TooLarge);
        };
        let Some(node) = self.open.last_mut() else {
            return self.fail(FdtError::PropertyOutsideNode);
        };
        if node.properties.contains(&nameoff) {
            return self.fail(FdtError::DuplicateProperty(name.into()));
        }
        node.properties.push(nameoff);
        self.token(token::PROP);
        self.token(len);
        self.token(nameoff);
        for p in parts {
            self.structure.extend_from_slice(p);
        }
        pad4(&mut self.structure);
    }

    /// A property with raw bytes as its value.
    pub fn property_bytes(&mut self, name: &str, value: &[u8]) {
        self.property_parts(name, &[value]);
    }

    /// A property with no value: a boolean that is true by being there (§2.2.4.2
    /// `<empty>`), such as `interrupt-controller`.
    pub fn property_empty(&mut self, name: &str) {
        self.property_parts(name, &[]);
    }

    /// A `<u32>` property: one big-endian cell.
    pub fn property_u32(&mut self, name: &str, value: u32) {
        self.property_parts(name, &[&value.to_be_bytes()]);
    }

    /// A `<u64>` property: two cells, high one first (§2.2.4.2).
    pub fn property_u64(&mut self, name: &str, value: u64) {
        self.property_parts(name, &[&value.to_be_bytes()]);
    }

    /// A `<prop-encoded-array>` of u32 cells, such as `reg` or `interrupts`.
    pub fn property_cells(&mut self, name: &str, cells: &[u32]) {
        let bytes: Vec<u8> = cells.iter().flat_map(|c| c.to_be_bytes()).collect();
        self.property_parts(name, &[&bytes]);
    }

    /// A `<prop-encoded-array>` of u64s, each as two cells: a `reg` of (address, size)
    /// pairs where `#address-cells` and `#size-cells` are both 2.
    pub fn property_u64s(&mut self, name: &str, values: &[u64]) {
        let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_be_bytes()).collect();
        self.property_parts(name, &[&bytes]);
    }

    /// A `<string>` property: the text and a NUL.
    pub fn property_string(&mut self, name: &str, value: &str) {
        self.property_strings(name, &[value]);
    }

    /// A `<stringlist>` property: each string and its NUL, one after another, such as
    /// `compatible = "arm,pl011", "arm,primecell"`.
    pub fn property_strings(&mut self, name: &str, values: &[&str]) {
        if values.iter().any(|v| v.as_bytes().contains(&0)) {
            return self.fail(FdtError::NulInString(name.into()));
        }
        let mut bytes = Vec::new();
        for v in values {
            bytes.extend_from_slice(v.as_bytes());
            bytes.push(0);
        }
        self.property_parts(name, &[&bytes]);
    }

    /// The blob, or the first mistake made building it.
    pub fn finish(mut self) -> Result<Vec<u8>, FdtError> {
        if let Some(e) = self.error {
            return Err(e);
        }
        if !self.open.is_empty() {
            return Err(FdtError::UnclosedNodes(self.open.len()));
        }
        if !self.root_done {
            return Err(FdtError::NoRoot);
        }
        self.token(token::END);
        let size_dt_struct = self.structure.len();
        let size_dt_strings = self.strings.len();
        let off_dt_strings = OFF_DT_STRUCT
            .checked_add(size_dt_struct)
            .ok_or(FdtError::TooLarge)?;
        let total = off_dt_strings
            .checked_add(size_dt_strings)
            .ok_or(FdtError::TooLarge)?;
        let word = |v: usize| u32::try_from(v).map_err(|_| FdtError::TooLarge);
        let header = [
            FDT_MAGIC,
            word(total)?,
            word(OFF_DT_STRUCT)?,
            word(off_dt_strings)?,
            word(OFF_MEM_RSVMAP)?,
            FDT_VERSION,
            FDT_LAST_COMP_VERSION,
            self.boot_cpuid_phys,
            word(size_dt_strings)?,
            word(size_dt_struct)?,
        ];
        let mut blob = Vec::with_capacity(total);
        for w in header {
            blob.extend_from_slice(&w.to_be_bytes());
        }
        blob.extend_from_slice(&[0; RESERVATION_ENTRY_LEN]);
        blob.extend_from_slice(&self.structure);
        blob.extend_from_slice(&self.strings);
        Ok(blob)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    extern crate std;

    use super::*;
    use alloc::string::ToString;
    use alloc::vec;
    use arch::aarch64::fdt::{Fdt, Token};
    use std::format;

    /// The tree as Parapet's own reader walks it, one line per token: "{" name, "}" and
    /// `name = hex bytes`.
    pub(crate) fn walk(blob: &[u8]) -> Vec<String> {
        let fdt = Fdt::new(blob).expect("our reader takes the blob");
        let mut out = Vec::new();
        fdt.walk(|t| match t {
            Token::Begin(name) => out.push(format!("{{{name}")),
            Token::End => out.push("}".into()),
            Token::Property { name, value } => {
                let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
                out.push(format!("{name}={hex}"));
            }
        })
        .expect("the structure block walks");
        let mut reservations = 0;
        fdt.reservations(|_, _| reservations += 1).unwrap();
        assert_eq!(reservations, 0);
        out
    }

    /// Decompiles `blob` with dtc, if it is installed (Debian's `device-tree-compiler`):
    /// `None` when it is not, so no test needs it. dtc's warnings fail the caller's test.
    pub(crate) fn dtc_decompile(blob: &[u8], name: &str) -> Option<String> {
        use std::process::{Command, Stdio};
        if Command::new("dtc")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_err()
        {
            std::eprintln!("dtc is not installed: the decompile check is skipped");
            return None;
        }
        let path =
            std::env::temp_dir().join(format!("parapet-abi-{name}-{}.dtb", std::process::id()));
        std::fs::write(&path, blob).unwrap();
        let out = Command::new("dtc")
            .args(["-I", "dtb", "-O", "dts"])
            .arg(&path)
            .output()
            .unwrap();
        let _ = std::fs::remove_file(&path);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "dtc failed: {stderr}");
        assert!(stderr.trim().is_empty(), "dtc warns: {stderr}");
        Some(String::from_utf8(out.stdout).unwrap())
    }

    fn be32(b: &[u8], at: usize) -> u32 {
        u32::from_be_bytes(b[at..at + 4].try_into().unwrap())
    }

    fn sample() -> FdtWriter {
        let mut w = FdtWriter::new();
        w.begin_node("");
        w.property_u32("#address-cells", 2);
        w.property_u32("#size-cells", 2);
        w.property_strings("compatible", &["a,b", "c"]);
        w.begin_node("memory@40000000");
        w.property_string("device_type", "memory");
        w.property_u64s("reg", &[0x4000_0000, 0x2000_0000]);
        w.end_node();
        w.begin_node("node");
        w.property_empty("flag");
        w.property_cells("cells", &[1, 0xdead_beef]);
        w.property_u64("big", 0x0123_4567_89ab_cdef);
        w.property_bytes("raw", &[1, 2, 3]);
        // Another "#address-cells": the name is stored once.
        w.property_u32("#address-cells", 1);
        w.end_node();
        w.end_node();
        w
    }

    #[test]
    fn the_header_and_blocks_are_where_the_spec_puts_them() {
        let blob = sample().finish().unwrap();
        assert_eq!(be32(&blob, 0), 0xd00d_feed);
        assert_eq!(be32(&blob, 4) as usize, blob.len(), "totalsize");
        assert_eq!(be32(&blob, 8), 56, "off_dt_struct");
        assert_eq!(be32(&blob, 16), 40, "off_mem_rsvmap");
        assert_eq!(be32(&blob, 20), 17, "version");
        assert_eq!(be32(&blob, 24), 16, "last_comp_version");
        assert_eq!(be32(&blob, 28), 0, "boot_cpuid_phys");
        assert!(blob[40..56].iter().all(|&b| b == 0), "one zero reservation");
        let (off_strings, size_strings) = (be32(&blob, 12) as usize, be32(&blob, 32) as usize);
        let size_struct = be32(&blob, 36) as usize;
        assert_eq!(56 + size_struct, off_strings);
        assert_eq!(off_strings + size_strings, blob.len());
        assert_eq!(size_struct % 4, 0);
        assert_eq!(be32(&blob, 56), token::BEGIN_NODE);
        assert_eq!(
            &blob[60..64],
            &[0, 0, 0, 0],
            "the root's empty name, padded"
        );
        assert_eq!(be32(&blob, off_strings - 4), token::END);
        assert_eq!(be32(&blob, off_strings - 8), token::END_NODE);
        // Each name once, in first-use order.
        let strings = &blob[off_strings..];
        assert_eq!(
            strings,
            b"#address-cells\0#size-cells\0compatible\0device_type\0reg\0flag\0cells\0big\0raw\0"
        );
        let mut w = FdtWriter::new();
        w.set_boot_cpuid_phys(3);
        w.begin_node("");
        w.end_node();
        let empty = w.finish().unwrap();
        assert_eq!(be32(&empty, 28), 3);
        // Header, reservation, BEGIN_NODE + "" padded, END_NODE, END; no strings.
        assert_eq!(empty.len(), 40 + 16 + 8 + 4 + 4);
    }

    #[test]
    fn parapets_reader_reads_back_every_kind_of_value() {
        let blob = sample().finish().unwrap();
        assert_eq!(
            walk(&blob),
            [
                "{",
                "#address-cells=00000002",
                "#size-cells=00000002",
                "compatible=612c62006300",
                "{memory@40000000",
                "device_type=6d656d6f727900",
                "reg=00000000400000000000000020000000",
                "}",
                "{node",
                "flag=",
                "cells=00000001deadbeef",
                "big=0123456789abcdef",
                "raw=010203",
                "#address-cells=00000001",
                "}",
                "}",
            ]
        );
    }

    #[test]
    fn dtc_decompiles_it_to_what_was_written() {
        let blob = sample().finish().unwrap();
        let Some(dts) = dtc_decompile(&blob, "fdt-writer") else {
            return;
        };
        let expected = "/dts-v1/;

/ {
\t#address-cells = <0x02>;
\t#size-cells = <0x02>;
\tcompatible = \"a,b\\0c\";

\tmemory@40000000 {
\t\tdevice_type = \"memory\";
\t\treg = <0x00 0x40000000 0x00 0x20000000>;
\t};

\tnode {
\t\tflag;
\t\tcells = <0x01 0xdeadbeef>;
\t\tbig = <0x1234567 0x89abcdef>;
\t\traw = [01 02 03];
\t\t#address-cells = <0x01>;
\t};
};
";
        assert_eq!(dts, expected);
    }

    #[test]
    fn each_mistake_has_its_own_error() {
        let finish = |build: &dyn Fn(&mut FdtWriter)| {
            let mut w = FdtWriter::new();
            build(&mut w);
            w.finish()
        };
        assert_eq!(finish(&|_| {}), Err(FdtError::NoRoot));
        assert_eq!(
            finish(&|w| w.property_u32("x", 1)),
            Err(FdtError::PropertyOutsideNode)
        );
        assert_eq!(
            finish(&|w| w.begin_node("")),
            Err(FdtError::UnclosedNodes(1))
        );
        assert_eq!(
            finish(&|w| {
                w.begin_node("");
                w.begin_node("a");
                w.begin_node("b");
                w.end_node();
            }),
            Err(FdtError::UnclosedNodes(2))
        );
        assert_eq!(finish(&|w| w.end_node()), Err(FdtError::UnbalancedEnd));
        assert_eq!(
            finish(&|w| {
                w.begin_node("");
                w.end_node();
                w.end_node();
            }),
            Err(FdtError::UnbalancedEnd)
        );
        assert_eq!(
            finish(&|w| {
                w.begin_node("");
                w.end_node();
                w.begin_node("");
                w.end_node();
            }),
            Err(FdtError::SecondRoot)
        );
        assert_eq!(
            finish(&|w| {
                w.begin_node("");
                w.end_node();
                w.property_u32("x", 1);
            }),
            Err(FdtError::PropertyOutsideNode)
        );
        assert_eq!(
            finish(&|w| w.begin_node("root")),
            Err(FdtError::RootNotEmptyName("root".into()))
        );
        for bad in ["", "a/b", "a@", "@1", "a@1@2", "a b", "a\0b", "caf\u{e9}"] {
            assert_eq!(
                finish(&|w| {
                    w.begin_node("");
                    w.begin_node(bad);
                }),
                Err(FdtError::BadNodeName(bad.into())),
                "{bad:?}"
            );
        }
        for bad in ["", "a b", "a@b", "a/b", "a\0"] {
            assert_eq!(
                finish(&|w| {
                    w.begin_node("");
                    w.property_empty(bad);
                }),
                Err(FdtError::BadPropertyName(bad.into())),
                "{bad:?}"
            );
        }
        assert_eq!(
            finish(&|w| {
                w.begin_node("");
                w.begin_node("a");
                w.end_node();
                w.property_u32("late", 1);
            }),
            Err(FdtError::PropertyAfterChild("late".into()))
        );
        assert_eq!(
            finish(&|w| {
                w.begin_node("");
                w.property_u32("x", 1);
                w.property_cells("x", &[2]);
            }),
            Err(FdtError::DuplicateProperty("x".into()))
        );
        assert_eq!(
            finish(&|w| {
                w.begin_node("");
                w.begin_node("a@1");
                w.end_node();
                w.begin_node("a@1");
            }),
            Err(FdtError::DuplicateNode("a@1".into()))
        );
        assert_eq!(
            finish(&|w| {
                w.begin_node("");
                w.property_strings("compatible", &["ok", "bad\0"]);
            }),
            Err(FdtError::NulInString("compatible".into()))
        );
        // The first mistake is the one reported.
        assert_eq!(
            finish(&|w| {
                w.property_u32("x", 1);
                w.end_node();
            }),
            Err(FdtError::PropertyOutsideNode)
        );
        // Same names in different nodes, and same-named children of different parents, are
        // fine; so are the characters the tables allow.
        assert!(finish(&|w| {
            w.begin_node("");
            w.property_u32("x", 1);
            w.begin_node("a");
            w.property_u32("x", 1);
            w.begin_node("c");
            w.end_node();
            w.end_node();
            w.begin_node("b");
            w.begin_node("c");
            w.end_node();
            w.end_node();
            w.begin_node("A-Z_a.z,0+9@f,1");
            w.property_empty("#?,._+-Az09");
            w.end_node();
            w.end_node();
        })
        .is_ok());
        assert_eq!(FdtError::UnclosedNodes(2).to_string(), "2 nodes left open");
    }

    /// Pseudo-random sequences of calls, mostly valid, now and then not: a blob that
    /// Parapet's reader walks back to the same tokens, or an error; never a panic.
    #[test]
    fn random_call_sequences_give_readable_blobs_or_errors() {
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut pick = move |n: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % n
        };
        let (mut ok, mut refused) = (0, 0);
        for _ in 0..3000 {
            let mut w = FdtWriter::new();
            let mut expected = Vec::new();
            // Open nodes, each with whether it has a child yet.
            let mut open: Vec<bool> = Vec::new();
            let mut count = 0;
            let begin = |w: &mut FdtWriter, expected: &mut Vec<String>, name: &str| {
                w.begin_node(name);
                expected.push(format!("{{{name}"));
            };
            begin(
                &mut w,
                &mut expected,
                ["", "", "", "", "", "", "", "", "", "x"][pick(10) as usize],
            );
            open.push(false);
            for _ in 0..pick(30) {
                count += 1;
                match pick(8) {
                    // Parapet's reader follows 16 levels; stay within them.
                    0 | 1 if open.len() < 12 => {
                        let name = match pick(40) {
                            0 => "x/y".into(),
                            1 => "dup".into(),
                            _ => format!("n{count}@{:x}", pick(1 << 20)),
                        };
                        begin(&mut w, &mut expected, &name);
                        if let Some(parent) = open.last_mut() {
                            *parent = true;
                        }
                        open.push(false);
                    }
                    2 | 3 if open.len() > 1 || pick(30) == 0 => {
                        w.end_node();
                        expected.push("}".to_string());
                        open.pop();
                    }
                    4 => {
                        let value = vec![0xa5u8; pick(9) as usize];
                        let name = match pick(40) {
                            0 => "bad name".into(),
                            1 => "dup".into(),
                            _ => format!("p{count}"),
                        };
                        w.property_bytes(&name, &value);
                        let hex: String = value.iter().map(|b| format!("{b:02x}")).collect();
                        expected.push(format!("{name}={hex}"));
                    }
                    5 if !open.last().copied().unwrap_or(true) || pick(10) == 0 => {
                        let name = format!("s{count}");
                        w.property_strings(&name, &["t", "uv"]);
                        expected.push(format!("{name}=7400757600"));
                    }
                    6 if !open.last().copied().unwrap_or(true) || pick(10) == 0 => {
                        let name = format!("u{count}");
                        w.property_u64(&name, u64::MAX);
                        expected.push(format!("{name}=ffffffffffffffff"));
                    }
                    _ => {}
                }
            }
            for _ in 0..open.len() {
                w.end_node();
                expected.push("}".to_string());
            }
            match w.finish() {
                Ok(blob) => {
                    assert_eq!(walk(&blob), expected);
                    ok += 1;
                }
                Err(_) => refused += 1,
            }
        }
        assert!(
            ok > 300 && refused > 300,
            "{ok} valid trees, {refused} refused: the generator is off balance"
        );
    }
}
