//! NV indices (Part 1 §37; Part 2 §13): their public area TPMS_NV_PUBLIC, its
//! unmarshalling and validation for TPM2_NV_DefineSpace, the index Name, and their part of
//! the state blob. The commands are `commands/nv.rs`.
//!
//! Only ordinary indices (TPM_NT_ORDINARY) exist; counter, bit-field, extend and PIN
//! indices are refused at definition (TPM_RC_ATTRIBUTES, as Part 4 `TPM2_NV_DefineSpace`
//! answers for a type it does not support). An index's data starts as 0xFF octets (Part 4
//! `NvDefineIndex`) and is readable once TPMA_NV_WRITTEN is set by the first write.

use alloc::vec;
use alloc::vec::Vec;

use super::constants::*;
use super::hash::{HashAlg, MAX_DIGEST_SIZE};
use super::marshal::{Reader, Writer};
use super::rc::{self, Rc};

/// TPMS_NV_PUBLIC (Part 2 §13.5, Table 206).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvPublic {
    /// nvIndex: TPMI_RH_NV_INDEX.
    pub index: u32,
    /// nameAlg: TPMI_ALG_HASH (no TPM_ALG_NULL).
    pub name_alg: HashAlg,
    /// attributes: TPMA_NV.
    pub attributes: u32,
    /// authPolicy: TPM2B_DIGEST.
    pub auth_policy: Vec<u8>,
    /// dataSize: UINT16.
    pub data_size: u16,
}

impl NvPublic {
    /// The marshalled TPMS_NV_PUBLIC.
    pub fn write(&self, w: &mut Writer) {
        w.u32(self.index);
        w.u16(self.name_alg.alg_id());
        w.u32(self.attributes);
        w.tpm2b(&self.auth_policy);
        w.u16(self.data_size);
    }

    /// The index's Name (Part 1 §16: nameAlg || H_nameAlg(TPMS_NV_PUBLIC)), the TPM2B_NAME
    /// buffer.
    pub fn name(&self) -> Vec<u8> {
        let mut public = Writer::new();
        self.write(&mut public);
        let digest = self.name_alg.digest(&[public.as_slice()]);
        let mut name = Vec::with_capacity(2 + digest.as_bytes().len());
        name.extend_from_slice(&self.name_alg.alg_id().to_be_bytes());
        name.extend_from_slice(digest.as_bytes());
        name
    }

    pub fn has(&self, attribute: u32) -> bool {
        self.attributes & attribute != 0
    }
}

/// TPMI_RH_NV_INDEX (Part 2 §9.23): a handle of type TPM_HT_NV_INDEX, else TPM_RC_VALUE.
pub fn is_nv_index(handle: u32) -> bool {
    (NV_INDEX_FIRST..=NV_INDEX_LAST).contains(&handle)
}

/// TPM2B_NV_PUBLIC (Part 2 §13.6, Table 207): a size of zero, or one that is not the size
/// of the TPMS_NV_PUBLIC inside, is TPM_RC_SIZE; the fields unmarshal as their types
/// (TPMI_RH_NV_INDEX: TPM_RC_VALUE; TPMI_ALG_HASH: TPM_RC_HASH; TPMA_NV: reserved bits
/// TPM_RC_RESERVED_BITS; authPolicy a TPM2B_DIGEST: TPM_RC_SIZE over sizeof(TPMU_HA)).
pub fn read_nv_public(r: &mut Reader) -> Result<NvPublic, Rc> {
    let size = usize::from(r.u16()?);
    if size == 0 {
        return Err(rc::SIZE);
    }
    // As Part 4's TPM2B_NV_PUBLIC_Unmarshal: the structure is read from the rest of the
    // parameters, then what it took must be the size given.
    let before = r.remaining();
    let index = r.u32()?;
    if !is_nv_index(index) {
        return Err(rc::VALUE);
    }
    let name_alg = HashAlg::from_alg_id(r.u16()?).ok_or(rc::HASH)?;
    let attributes = r.u32()?;
    if attributes & TPMA_NV_RESERVED != 0 {
        return Err(rc::RESERVED_BITS);
    }
    let auth_policy = r.tpm2b(MAX_DIGEST_SIZE)?.to_vec();
    let data_size = r.u16()?;
    if before - r.remaining() != size {
        return Err(rc::SIZE);
    }
    Ok(NvPublic {
        index,
        name_alg,
        attributes,
        auth_policy,
        data_size,
    })
}

/// One defined index: its public area, authValue and data.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NvIndex {
    pub public: NvPublic,
    /// authValue, trailing zeros removed (Part 1 §19.6.4.3; Part 4
    /// `MemoryRemoveTrailingZeros`).
    pub auth: Vec<u8>,
    pub data: Vec<u8>,
}

impl NvIndex {
    pub fn new(public: NvPublic, auth: &[u8]) -> Self {
        let end = auth.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
        let data = vec![0xFF; usize::from(public.data_size)];
        Self {
            public,
            auth: auth[..end].to_vec(),
            data,
        }
    }
}

/// The NV indices, sorted by handle (GetCapability(TPM_CAP_HANDLES) lists them in order).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NvIndices {
    indices: Vec<NvIndex>,
}

impl NvIndices {
    pub fn get(&self, handle: u32) -> Option<&NvIndex> {
        self.indices
            .binary_search_by_key(&handle, |i| i.public.index)
            .ok()
            .map(|at| &self.indices[at])
    }

    pub fn get_mut(&mut self, handle: u32) -> Option<&mut NvIndex> {
        match self
            .indices
            .binary_search_by_key(&handle, |i| i.public.index)
        {
            Ok(at) => Some(&mut self.indices[at]),
            Err(_) => None,
        }
    }

    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// The handles, ascending.
    pub fn handles(&self) -> impl Iterator<Item = u32> + '_ {
        self.indices.iter().map(|i| i.public.index)
    }

    /// Adds `index`: TPM_RC_NV_DEFINED if its handle is taken, TPM_RC_NV_SPACE if the
    /// index count or the data space would be exceeded.
    pub fn define(&mut self, index: NvIndex) -> Result<(), Rc> {
        let at = match self
            .indices
            .binary_search_by_key(&index.public.index, |i| i.public.index)
        {
            Ok(_) => return Err(rc::NV_DEFINED),
            Err(at) => at,
        };
        let used: usize = self.indices.iter().map(|i| i.data.len()).sum();
        if self.indices.len() >= MAX_NV_INDICES || used + index.data.len() > NV_INDEX_SPACE {
            return Err(rc::NV_SPACE);
        }
        self.indices.insert(at, index);
        Ok(())
    }

    pub fn undefine(&mut self, handle: u32) {
        self.indices.retain(|i| i.public.index != handle);
    }

    /// TPM2_Clear (Part 3 §24.6): releases every index the owner defined (those without
    /// TPMA_NV_PLATFORMCREATE).
    pub fn clear_owner(&mut self) {
        self.indices
            .retain(|i| i.public.has(super::constants::TPMA_NV_PLATFORMCREATE));
    }

    /// TPM Reset and TPM Restart (Part 1 §37.3.3, Part 2 §13.4 TPMA_NV_CLEAR_STCLEAR): an
    /// index with TPMA_NV_CLEAR_STCLEAR reads as unwritten again.
    pub fn startup_clear(&mut self) {
        for i in &mut self.indices {
            if i.public.has(TPMA_NV_CLEAR_STCLEAR) {
                i.public.attributes &= !TPMA_NV_WRITTEN;
            }
        }
    }

    /// State blob: count, then per index the TPMS_NV_PUBLIC, authValue (TPM2B) and data
    /// (dataSize octets).
    pub fn write_state(&self, w: &mut Writer) {
        w.count(self.indices.len());
        for i in &self.indices {
            i.public.write(w);
            w.tpm2b(&i.auth);
            w.bytes(&i.data);
        }
    }

    /// The inverse of [`NvIndices::write_state`]; `Err(None)` when truncated, `Err(Some)`
    /// for a value no state holds. Everything NV_DefineSpace checks is checked again.
    pub fn read_state(r: &mut Reader) -> Result<Self, Option<&'static str>> {
        let count = r.u32().map_err(|_| None)? as usize;
        if count > MAX_NV_INDICES {
            return Err(Some("NV index count"));
        }
        let mut nv = NvIndices::default();
        for _ in 0..count {
            let index = r.u32().map_err(|_| None)?;
            let name_alg = r.u16().map_err(|_| None)?;
            let attributes = r.u32().map_err(|_| None)?;
            let auth_policy = r.tpm2b(usize::from(u16::MAX)).map_err(|_| None)?;
            let data_size = r.u16().map_err(|_| None)?;
            let auth = r.tpm2b(usize::from(u16::MAX)).map_err(|_| None)?;
            let data = r.bytes(usize::from(data_size)).map_err(|_| None)?;
            let name_alg = HashAlg::from_alg_id(name_alg).ok_or(Some("NV nameAlg"))?;
            let public = NvPublic {
                index,
                name_alg,
                attributes,
                auth_policy: auth_policy.to_vec(),
                data_size,
            };
            let written = attributes & TPMA_NV_WRITTEN;
            let mut defined = public.clone();
            defined.attributes &= !TPMA_NV_WRITTEN;
            let owner = if public.has(TPMA_NV_PLATFORMCREATE) {
                TPM_RH_PLATFORM
            } else {
                TPM_RH_OWNER
            };
            if !is_nv_index(index)
                || attributes & TPMA_NV_RESERVED != 0
                || check_definition(owner, &defined, auth).is_err()
                || auth.iter().last() == Some(&0)
            {
                return Err(Some("NV index"));
            }
            let mut entry = NvIndex::new(defined, auth);
            entry.public.attributes |= written;
            entry.data.copy_from_slice(data);
            if nv.indices.last().is_some_and(|l| l.public.index >= index) {
                return Err(Some("NV index order"));
            }
            nv.define(entry).map_err(|_| Some("NV space"))?;
        }
        Ok(nv)
    }
}

/// The checks of Part 3 §31.3.1 (in Part 4 `TPM2_NV_DefineSpace`'s order) on a public area
/// and authValue for an index defined with `auth_handle` (TPM_RH_OWNER or
/// TPM_RH_PLATFORM). Errors are numbered: `auth` is parameter 1, `publicInfo` parameter 2.
pub fn check_definition(auth_handle: u32, public: &NvPublic, auth: &[u8]) -> Result<(), Rc> {
    let public_info = |e| rc::parameter(e, 2);
    let attributes = public.attributes;
    let has = |a: u32| attributes & a != 0;
    let digest_size = public.name_alg.digest_size();
    // TPMA_NV_POLICY_DELETE needs TPM2_NV_UndefineSpaceSpecial, not implemented.
    if has(TPMA_NV_POLICY_DELETE) {
        return Err(public_info(rc::ATTRIBUTES));
    }
    // authPolicy is empty or a digest of nameAlg.
    if !public.auth_policy.is_empty() && public.auth_policy.len() != digest_size {
        return Err(public_info(rc::SIZE));
    }
    // authValue no longer than a digest of nameAlg (trailing zeros do not count).
    let end = auth.iter().rposition(|&b| b != 0).map_or(0, |p| p + 1);
    if end > digest_size {
        return Err(rc::parameter(rc::SIZE, 1));
    }
    // The index type: only TPM_NT_ORDINARY is implemented.
    if (attributes & TPMA_NV_TPM_NT_MASK) >> TPMA_NV_TPM_NT_SHIFT != TPM_NT_ORDINARY {
        return Err(public_info(rc::ATTRIBUTES));
    }
    // An ordinary index holds at most MAX_NV_INDEX_SIZE octets.
    if public.data_size > MAX_NV_INDEX_SIZE {
        return Err(public_info(rc::SIZE));
    }
    // At least one way to read and one way to write.
    if !has(TPMA_NV_PPREAD | TPMA_NV_OWNERREAD | TPMA_NV_AUTHREAD | TPMA_NV_POLICYREAD)
        || !has(TPMA_NV_PPWRITE | TPMA_NV_OWNERWRITE | TPMA_NV_AUTHWRITE | TPMA_NV_POLICYWRITE)
    {
        return Err(public_info(rc::ATTRIBUTES));
    }
    // State the TPM sets, never the caller.
    if has(TPMA_NV_WRITELOCKED | TPMA_NV_READLOCKED | TPMA_NV_WRITTEN) {
        return Err(public_info(rc::ATTRIBUTES));
    }
    // TPMA_NV_PLATFORMCREATE is SET exactly when the platform defines the index.
    if (auth_handle == TPM_RH_PLATFORM) != has(TPMA_NV_PLATFORMCREATE) {
        return Err(public_info(rc::ATTRIBUTES));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn public(attributes: u32, data_size: u16) -> NvPublic {
        NvPublic {
            index: 0x0150_0016,
            name_alg: HashAlg::Sha256,
            attributes,
            auth_policy: Vec::new(),
            data_size,
        }
    }

    const RW: u32 = TPMA_NV_OWNERREAD | TPMA_NV_OWNERWRITE;

    #[test]
    fn definition_rules() {
        let ok = public(RW, 32);
        assert_eq!(check_definition(TPM_RH_OWNER, &ok, b""), Ok(()));
        assert_eq!(check_definition(TPM_RH_OWNER, &ok, &[1; 32]), Ok(()));
        assert_eq!(
            check_definition(TPM_RH_OWNER, &ok, &[[1; 32], [0; 32]].concat()),
            Ok(())
        );
        assert_eq!(check_definition(TPM_RH_OWNER, &ok, &[1; 33]), Err(0x1D5));
        let p2_attributes = 0x2C2;
        for bad in [
            public(RW | TPMA_NV_POLICY_DELETE, 1),
            public(RW | (1 << TPMA_NV_TPM_NT_SHIFT), 8),
            public(TPMA_NV_OWNERREAD, 1),
            public(TPMA_NV_OWNERWRITE, 1),
            public(RW | TPMA_NV_WRITTEN, 1),
            public(RW | TPMA_NV_WRITELOCKED, 1),
            public(RW | TPMA_NV_READLOCKED, 1),
            public(RW | TPMA_NV_PLATFORMCREATE, 1),
        ] {
            assert_eq!(
                check_definition(TPM_RH_OWNER, &bad, b""),
                Err(p2_attributes),
                "{bad:?}"
            );
        }
        assert_eq!(
            check_definition(TPM_RH_PLATFORM, &ok, b""),
            Err(p2_attributes)
        );
        assert_eq!(
            check_definition(
                TPM_RH_PLATFORM,
                &public(RW | TPMA_NV_PLATFORMCREATE, 1),
                b""
            ),
            Ok(())
        );
        assert_eq!(
            check_definition(TPM_RH_OWNER, &public(RW, MAX_NV_INDEX_SIZE + 1), b""),
            Err(0x2D5)
        );
        let mut policy = public(RW, 1);
        policy.auth_policy = vec![0; 20];
        assert_eq!(check_definition(TPM_RH_OWNER, &policy, b""), Err(0x2D5));
        policy.auth_policy = vec![0; 32];
        assert_eq!(check_definition(TPM_RH_OWNER, &policy, b""), Ok(()));
    }

    #[test]
    fn space_limits() {
        let mut nv = NvIndices::default();
        for n in 0..(NV_INDEX_SPACE / usize::from(MAX_NV_INDEX_SIZE)) as u32 {
            let mut p = public(RW, MAX_NV_INDEX_SIZE);
            p.index = NV_INDEX_FIRST + n;
            assert_eq!(nv.define(NvIndex::new(p, b"")), Ok(()));
        }
        let mut p = public(RW, 1);
        p.index = NV_INDEX_LAST;
        assert_eq!(nv.define(NvIndex::new(p.clone(), b"")), Err(rc::NV_SPACE));
        p.data_size = 0;
        assert_eq!(nv.define(NvIndex::new(p, b"")), Ok(()));
        let mut p = public(RW, 0);
        p.index = NV_INDEX_FIRST;
        assert_eq!(nv.define(NvIndex::new(p, b"")), Err(rc::NV_DEFINED));
        let mut nv = NvIndices::default();
        for n in 0..MAX_NV_INDICES as u32 {
            let mut p = public(RW, 0);
            p.index = NV_INDEX_FIRST + n;
            assert_eq!(nv.define(NvIndex::new(p, b"")), Ok(()));
        }
        assert_eq!(
            nv.define(NvIndex::new(public(RW, 0), b"")),
            Err(rc::NV_SPACE)
        );
        assert_eq!(nv.len(), MAX_NV_INDICES);
    }
}
