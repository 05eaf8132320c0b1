//! The command table: every implemented command, its handle area, its authorization needs
//! and the function that unmarshals its parameters and acts (Part 3; the attributes are
//! Part 3's "Command and Response" tables, as Part 4's CommandAttributeData.h records them).
//!
//! A command function reads its parameters with [`Call::param`] (which numbers any error
//! with the parameter), calls [`Call::end`] (octets left over are TPM_RC_SIZE) and only
//! then changes state, writing its response parameters into [`Call::out`].

mod capability;
mod context;
mod hash;
mod hierarchy;
mod nv;
mod object;
mod pcr;
mod random;
mod rsa;
mod sequence;
mod session;
mod signing;
mod startup;
mod testing;

use super::constants::*;
use super::handles::HandleKind;
use super::marshal::{Reader, Writer};
use super::rc::{self, Rc};
use super::Tpm;

/// The most handles a Part 3 command has: three (TPM2_PolicyNV, TPM2_NV_Certify; Part 4's
/// MAX_HANDLE_NUM).
pub const MAX_HANDLES: usize = 3;

/// One command being executed.
pub struct Call<'a, 'h> {
    pub locality: u8,
    pub handles: &'h [u32],
    pub params: Reader<'a>,
    pub out: Writer,
    /// The response's handle, for the commands that return one (StartAuthSession).
    pub out_handle: Option<u32>,
}

impl<'a> Call<'a, '_> {
    /// Unmarshals parameter `n` (1-based) with `read`, numbering its error TPM_RC_P + n.
    pub fn param<T>(
        &mut self,
        n: u32,
        read: impl FnOnce(&mut Reader<'a>) -> Result<T, Rc>,
    ) -> Result<T, Rc> {
        read(&mut self.params).map_err(|e| rc::parameter(e, n))
    }

    /// All parameters are read: anything left is TPM_RC_SIZE (Part 3 §5.8.2).
    pub fn end(&self) -> Result<(), Rc> {
        if self.params.is_empty() {
            Ok(())
        } else {
            Err(rc::SIZE)
        }
    }
}

pub type Run = fn(&mut Tpm, &mut Call) -> Result<(), Rc>;

/// An implemented command.
pub struct CommandDef {
    pub cc: u32,
    /// The handle area, in order.
    pub handles: &'static [HandleKind],
    /// The first this-many handles need an authorization (Part 3's `@` handles, USER role);
    /// session i authorizes handle i.
    pub auth_handles: usize,
    /// Whether the command may carry sessions at all (TPM2_Startup may not).
    pub sessions_allowed: bool,
    /// TPMA_CC.nv: the command may write NV.
    pub nv: bool,
    /// TPMA_CC.rHandle: the response has a handle (set in [`Call::out_handle`]).
    pub r_handle: bool,
    /// TPMA_CC.flushed: a successful command flushes its (sequence) object.
    pub flushed: bool,
    pub run: Run,
}

impl CommandDef {
    /// The command's TPMA_CC (Part 2 §8.9, Table 41): commandIndex (15:0), nv (22),
    /// flushed (24), cHandles (27:25), rHandle (28). extensive and V are clear for every
    /// command here.
    pub fn attributes(&self) -> u32 {
        (self.cc & 0xFFFF)
            | (u32::from(self.nv) << 22)
            | (u32::from(self.flushed) << 24)
            | ((self.handles.len() as u32) << 25)
            | (u32::from(self.r_handle) << 28)
    }
}

const PCR: &[HandleKind] = &[HandleKind::Pcr { allow_null: false }];
const PROVISION: &[HandleKind] = &[HandleKind::Provision];
const PROVISION_NV: &[HandleKind] = &[HandleKind::Provision, HandleKind::NvIndex];
const NV_AUTH_NV: &[HandleKind] = &[HandleKind::NvAuth, HandleKind::NvIndex];
const NV: &[HandleKind] = &[HandleKind::NvIndex];
const PCR_OR_NULL: &[HandleKind] = &[HandleKind::Pcr { allow_null: true }];
const KEY_AND_BIND: &[HandleKind] = &[HandleKind::ObjectOrNull, HandleKind::EntityOrNull];
const POLICY_SESSION: &[HandleKind] = &[HandleKind::PolicySession];
const CONTEXT: &[HandleKind] = &[HandleKind::Context];
const HIERARCHY: &[HandleKind] = &[HandleKind::Hierarchy];
const OBJECT: &[HandleKind] = &[HandleKind::Object];
const PROVISION_OBJECT: &[HandleKind] = &[HandleKind::Provision, HandleKind::Object];
const HIERARCHY_AUTH: &[HandleKind] = &[HandleKind::HierarchyAuth];
const CLEAR: &[HandleKind] = &[HandleKind::Clear];
const SEQUENCE: &[HandleKind] = &[HandleKind::Sequence];
const PCR_AND_SEQUENCE: &[HandleKind] =
    &[HandleKind::Pcr { allow_null: true }, HandleKind::Sequence];

const fn def(cc: u32, nv: bool, run: Run) -> CommandDef {
    CommandDef {
        cc,
        handles: &[],
        auth_handles: 0,
        sessions_allowed: true,
        nv,
        r_handle: false,
        flushed: false,
        run,
    }
}

const fn authorized(cc: u32, handles: &'static [HandleKind], run: Run) -> CommandDef {
    CommandDef {
        cc,
        handles,
        auth_handles: 1,
        sessions_allowed: true,
        nv: true,
        r_handle: false,
        flushed: false,
        run,
    }
}

/// Sorted by command code (GetCapability(TPM_CAP_COMMANDS) lists them in this order).
pub const COMMANDS: &[CommandDef] = &[
    authorized(
        TPM_CC_EVICT_CONTROL,
        PROVISION_OBJECT,
        object::evict_control,
    ),
    authorized(
        TPM_CC_NV_UNDEFINE_SPACE,
        PROVISION_NV,
        nv::nv_undefine_space,
    ),
    authorized(TPM_CC_CLEAR, CLEAR, hierarchy::clear),
    authorized(TPM_CC_CLEAR_CONTROL, CLEAR, hierarchy::clear_control),
    authorized(
        TPM_CC_HIERARCHY_CHANGE_AUTH,
        HIERARCHY_AUTH,
        hierarchy::hierarchy_change_auth,
    ),
    authorized(TPM_CC_NV_DEFINE_SPACE, PROVISION, nv::nv_define_space),
    CommandDef {
        nv: false,
        r_handle: true,
        ..authorized(TPM_CC_CREATE_PRIMARY, HIERARCHY, object::create_primary)
    },
    authorized(TPM_CC_NV_WRITE, NV_AUTH_NV, nv::nv_write),
    authorized(TPM_CC_PCR_EVENT, PCR_OR_NULL, pcr::pcr_event),
    authorized(TPM_CC_PCR_RESET, PCR, pcr::pcr_reset),
    CommandDef {
        nv: false,
        flushed: true,
        ..authorized(
            TPM_CC_SEQUENCE_COMPLETE,
            SEQUENCE,
            sequence::sequence_complete,
        )
    },
    def(
        TPM_CC_INCREMENTAL_SELF_TEST,
        true,
        testing::incremental_self_test,
    ),
    def(TPM_CC_SELF_TEST, true, testing::self_test),
    CommandDef {
        sessions_allowed: false,
        ..def(TPM_CC_STARTUP, true, startup::startup)
    },
    def(TPM_CC_SHUTDOWN, true, startup::shutdown),
    def(TPM_CC_STIR_RANDOM, true, random::stir_random),
    CommandDef {
        nv: false,
        ..authorized(TPM_CC_NV_READ, NV_AUTH_NV, nv::nv_read)
    },
    CommandDef {
        nv: false,
        ..authorized(TPM_CC_CREATE, OBJECT, object::create)
    },
    CommandDef {
        nv: false,
        r_handle: true,
        ..authorized(TPM_CC_LOAD, OBJECT, object::load)
    },
    CommandDef {
        nv: false,
        ..authorized(TPM_CC_QUOTE, OBJECT, signing::quote)
    },
    CommandDef {
        nv: false,
        ..authorized(TPM_CC_RSA_DECRYPT, OBJECT, rsa::rsa_decrypt)
    },
    CommandDef {
        nv: false,
        ..authorized(TPM_CC_SEQUENCE_UPDATE, SEQUENCE, sequence::sequence_update)
    },
    CommandDef {
        nv: false,
        ..authorized(TPM_CC_SIGN, OBJECT, signing::sign)
    },
    CommandDef {
        nv: false,
        ..authorized(TPM_CC_UNSEAL, OBJECT, object::unseal)
    },
    CommandDef {
        r_handle: true,
        ..def(TPM_CC_CONTEXT_LOAD, false, context::context_load)
    },
    CommandDef {
        handles: CONTEXT,
        ..def(TPM_CC_CONTEXT_SAVE, false, context::context_save)
    },
    CommandDef {
        sessions_allowed: false,
        ..def(TPM_CC_FLUSH_CONTEXT, false, session::flush_context)
    },
    CommandDef {
        handles: NV,
        ..def(TPM_CC_NV_READ_PUBLIC, false, nv::nv_read_public)
    },
    CommandDef {
        handles: OBJECT,
        ..def(TPM_CC_READ_PUBLIC, false, object::read_public)
    },
    CommandDef {
        handles: OBJECT,
        ..def(TPM_CC_RSA_ENCRYPT, false, rsa::rsa_encrypt)
    },
    CommandDef {
        handles: KEY_AND_BIND,
        r_handle: true,
        ..def(
            TPM_CC_START_AUTH_SESSION,
            false,
            session::start_auth_session,
        )
    },
    CommandDef {
        handles: OBJECT,
        ..def(TPM_CC_VERIFY_SIGNATURE, false, signing::verify_signature)
    },
    def(TPM_CC_GET_CAPABILITY, false, capability::get_capability),
    def(TPM_CC_GET_RANDOM, false, random::get_random),
    def(TPM_CC_GET_TEST_RESULT, false, testing::get_test_result),
    def(TPM_CC_HASH, false, hash::hash),
    def(TPM_CC_PCR_READ, false, pcr::pcr_read),
    CommandDef {
        handles: POLICY_SESSION,
        ..def(TPM_CC_POLICY_PCR, false, session::policy_pcr)
    },
    authorized(TPM_CC_PCR_EXTEND, PCR_OR_NULL, pcr::pcr_extend),
    CommandDef {
        auth_handles: 2,
        flushed: true,
        ..authorized(
            TPM_CC_EVENT_SEQUENCE_COMPLETE,
            PCR_AND_SEQUENCE,
            sequence::event_sequence_complete,
        )
    },
    CommandDef {
        r_handle: true,
        ..def(
            TPM_CC_HASH_SEQUENCE_START,
            false,
            sequence::hash_sequence_start,
        )
    },
    CommandDef {
        handles: POLICY_SESSION,
        ..def(TPM_CC_POLICY_GET_DIGEST, false, session::policy_get_digest)
    },
    def(TPM_CC_TEST_PARMS, false, testing::test_parms),
];

pub fn lookup(cc: u32) -> Option<&'static CommandDef> {
    COMMANDS.iter().find(|c| c.cc == cc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_is_sorted_unique_and_within_limits() {
        assert!(COMMANDS.windows(2).all(|w| w[0].cc < w[1].cc));
        for c in COMMANDS {
            assert!(c.handles.len() <= MAX_HANDLES);
            assert!(c.auth_handles <= c.handles.len());
            assert_eq!(lookup(c.cc).map(|d| d.cc), Some(c.cc));
        }
        // CreatePrimary: one handle, a response handle (Part 4 s_ccAttr: 0x12000131);
        // ReadPublic one handle.
        assert_eq!(
            lookup(TPM_CC_CREATE_PRIMARY).unwrap().attributes(),
            0x1200_0131
        );
        assert_eq!(
            lookup(TPM_CC_READ_PUBLIC).unwrap().attributes(),
            0x0200_0173
        );
        // TPMA_CC of PCR_Extend: index 0x0182, nv, one handle (Part 4 s_ccAttr).
        assert_eq!(lookup(TPM_CC_PCR_EXTEND).unwrap().attributes(), 0x0240_0182);
        assert_eq!(
            lookup(TPM_CC_GET_CAPABILITY).unwrap().attributes(),
            0x0000_017A
        );
        // NV_Write: nv, two handles; NV_Read: two handles; NV_ReadPublic one (Part 4).
        assert_eq!(lookup(TPM_CC_NV_WRITE).unwrap().attributes(), 0x0440_0137);
        assert_eq!(lookup(TPM_CC_NV_READ).unwrap().attributes(), 0x0400_014E);
        assert_eq!(
            lookup(TPM_CC_NV_READ_PUBLIC).unwrap().attributes(),
            0x0200_0169
        );
        assert_eq!(
            lookup(TPM_CC_NV_DEFINE_SPACE).unwrap().attributes(),
            0x0240_012A
        );
        assert_eq!(lookup(TPM_CC_HASH).unwrap().attributes(), 0x0000_017D);
        // StartAuthSession: two handles and a response handle; PolicyPCR one handle.
        assert_eq!(
            lookup(TPM_CC_START_AUTH_SESSION).unwrap().attributes(),
            0x1400_0176
        );
        assert_eq!(lookup(TPM_CC_POLICY_PCR).unwrap().attributes(), 0x0200_017F);
        assert_eq!(
            lookup(TPM_CC_FLUSH_CONTEXT).unwrap().attributes(),
            0x0000_0165
        );
        // Sign, Quote, VerifySignature: one handle each (Part 4 s_ccAttr).
        assert_eq!(lookup(TPM_CC_SIGN).unwrap().attributes(), 0x0200_015D);
        assert_eq!(lookup(TPM_CC_QUOTE).unwrap().attributes(), 0x0200_0158);
        assert_eq!(
            lookup(TPM_CC_VERIFY_SIGNATURE).unwrap().attributes(),
            0x0200_0177
        );
        // Create: one handle; Load: one handle and a response handle (Part 4 s_ccAttr).
        assert_eq!(lookup(TPM_CC_CREATE).unwrap().attributes(), 0x0200_0153);
        assert_eq!(lookup(TPM_CC_LOAD).unwrap().attributes(), 0x1200_0157);
        assert_eq!(lookup(TPM_CC_UNSEAL).unwrap().attributes(), 0x0200_015E);
        // RSA_Decrypt, RSA_Encrypt: one handle each (Part 4 s_ccAttr).
        assert_eq!(
            lookup(TPM_CC_RSA_DECRYPT).unwrap().attributes(),
            0x0200_0159
        );
        assert_eq!(
            lookup(TPM_CC_RSA_ENCRYPT).unwrap().attributes(),
            0x0200_0174
        );
        // EvictControl: nv, two handles (Part 4 s_ccAttr).
        assert_eq!(
            lookup(TPM_CC_EVICT_CONTROL).unwrap().attributes(),
            0x0440_0120
        );
        // Clear, ClearControl, HierarchyChangeAuth: nv, one handle; TestParms: none (Part 4
        // s_ccAttr).
        assert_eq!(lookup(TPM_CC_CLEAR).unwrap().attributes(), 0x0240_0126);
        assert_eq!(
            lookup(TPM_CC_CLEAR_CONTROL).unwrap().attributes(),
            0x0240_0127
        );
        assert_eq!(
            lookup(TPM_CC_HIERARCHY_CHANGE_AUTH).unwrap().attributes(),
            0x0240_0129
        );
        assert_eq!(lookup(TPM_CC_TEST_PARMS).unwrap().attributes(), 0x0000_018A);
        // HashSequenceStart: a response handle; SequenceUpdate: one handle;
        // SequenceComplete: flushed, one handle; EventSequenceComplete: nv, flushed, two
        // handles (Part 4 s_ccAttr).
        assert_eq!(
            lookup(TPM_CC_HASH_SEQUENCE_START).unwrap().attributes(),
            0x1000_0186
        );
        assert_eq!(
            lookup(TPM_CC_SEQUENCE_UPDATE).unwrap().attributes(),
            0x0200_015C
        );
        assert_eq!(
            lookup(TPM_CC_SEQUENCE_COMPLETE).unwrap().attributes(),
            0x0300_013E
        );
        assert_eq!(
            lookup(TPM_CC_EVENT_SEQUENCE_COMPLETE).unwrap().attributes(),
            0x0540_0185
        );
        // ContextLoad: a response handle; ContextSave: one handle (Part 4 s_ccAttr).
        assert_eq!(
            lookup(TPM_CC_CONTEXT_LOAD).unwrap().attributes(),
            0x1000_0161
        );
        assert_eq!(
            lookup(TPM_CC_CONTEXT_SAVE).unwrap().attributes(),
            0x0200_0162
        );
    }
}
