//! Numeric constants of the TPM 2.0 interface, as TPM 2.0 Library Part 2 ("Structures",
//! Level 00 Revision 01.59) defines them, and the implementation limits this TPM chose.
//!
//! Values were checked against Part 2's tables as transcribed in tpm2-tss's
//! `tss2_tpm2_types.h` and the TCG reference implementation's `TpmTypes.h`.

// ---------------------------------------------------------------------------------------
// TPM_ST (Part 2 §6.9, Table 19): structure tags.

/// Response tag when the command's tag was bad: TPM_RC_BAD_TAG carries the TPM 1.2
/// response tag, so a TPM 1.2 driver can read it too.
pub const TPM_ST_RSP_COMMAND: u16 = 0x00C4;
/// Command or response without an authorization area. Every error response uses it.
pub const TPM_ST_NO_SESSIONS: u16 = 0x8001;
/// Command or response with an authorization area.
pub const TPM_ST_SESSIONS: u16 = 0x8002;
/// The tag of a TPMT_TK_HASHCHECK ticket (Part 2 §10.7.6).
pub const TPM_ST_HASHCHECK: u16 = 0x8024;

/// TPM_GENERATED_VALUE (Part 2 §6.2, Table 8): "\xffTCG", the first octets of every
/// structure the TPM signs. TPM2_Hash gives no ticket for data starting with it (Part 3
/// §15.4.1).
pub const TPM_GENERATED_VALUE: u32 = 0xFF54_4347;

// ---------------------------------------------------------------------------------------
// TPM_CC (Part 2 §6.5.2, Table 12): the command codes this TPM knows by name. Only those in
// the command table (commands/mod.rs) are implemented.

pub const TPM_CC_EVICT_CONTROL: u32 = 0x0000_0120;
pub const TPM_CC_NV_UNDEFINE_SPACE: u32 = 0x0000_0122;
pub const TPM_CC_CREATE_PRIMARY: u32 = 0x0000_0131;
pub const TPM_CC_CLEAR: u32 = 0x0000_0126;
pub const TPM_CC_CLEAR_CONTROL: u32 = 0x0000_0127;
pub const TPM_CC_HIERARCHY_CHANGE_AUTH: u32 = 0x0000_0129;
pub const TPM_CC_NV_DEFINE_SPACE: u32 = 0x0000_012A;
pub const TPM_CC_NV_WRITE: u32 = 0x0000_0137;
pub const TPM_CC_PCR_EVENT: u32 = 0x0000_013C;
pub const TPM_CC_PCR_RESET: u32 = 0x0000_013D;
pub const TPM_CC_SEQUENCE_COMPLETE: u32 = 0x0000_013E;
pub const TPM_CC_INCREMENTAL_SELF_TEST: u32 = 0x0000_0142;
pub const TPM_CC_SELF_TEST: u32 = 0x0000_0143;
pub const TPM_CC_STARTUP: u32 = 0x0000_0144;
pub const TPM_CC_SHUTDOWN: u32 = 0x0000_0145;
pub const TPM_CC_STIR_RANDOM: u32 = 0x0000_0146;
pub const TPM_CC_NV_READ: u32 = 0x0000_014E;
pub const TPM_CC_CREATE: u32 = 0x0000_0153;
pub const TPM_CC_LOAD: u32 = 0x0000_0157;
pub const TPM_CC_QUOTE: u32 = 0x0000_0158;
pub const TPM_CC_RSA_DECRYPT: u32 = 0x0000_0159;
pub const TPM_CC_SEQUENCE_UPDATE: u32 = 0x0000_015C;
pub const TPM_CC_SIGN: u32 = 0x0000_015D;
pub const TPM_CC_UNSEAL: u32 = 0x0000_015E;
pub const TPM_CC_CONTEXT_LOAD: u32 = 0x0000_0161;
pub const TPM_CC_CONTEXT_SAVE: u32 = 0x0000_0162;
pub const TPM_CC_FLUSH_CONTEXT: u32 = 0x0000_0165;
pub const TPM_CC_NV_READ_PUBLIC: u32 = 0x0000_0169;
pub const TPM_CC_READ_PUBLIC: u32 = 0x0000_0173;
pub const TPM_CC_RSA_ENCRYPT: u32 = 0x0000_0174;
pub const TPM_CC_START_AUTH_SESSION: u32 = 0x0000_0176;
pub const TPM_CC_VERIFY_SIGNATURE: u32 = 0x0000_0177;
pub const TPM_CC_GET_CAPABILITY: u32 = 0x0000_017A;
pub const TPM_CC_GET_RANDOM: u32 = 0x0000_017B;
pub const TPM_CC_GET_TEST_RESULT: u32 = 0x0000_017C;
pub const TPM_CC_HASH: u32 = 0x0000_017D;
pub const TPM_CC_PCR_READ: u32 = 0x0000_017E;
pub const TPM_CC_POLICY_PCR: u32 = 0x0000_017F;
pub const TPM_CC_PCR_EXTEND: u32 = 0x0000_0182;
pub const TPM_CC_EVENT_SEQUENCE_COMPLETE: u32 = 0x0000_0185;
pub const TPM_CC_HASH_SEQUENCE_START: u32 = 0x0000_0186;
pub const TPM_CC_POLICY_GET_DIGEST: u32 = 0x0000_0189;
pub const TPM_CC_TEST_PARMS: u32 = 0x0000_018A;

// ---------------------------------------------------------------------------------------
// TPM_ALG_ID (TCG Algorithm Registry, Table 3; Part 2 §6.3).

pub const TPM_ALG_RSA: u16 = 0x0001;
pub const TPM_ALG_SHA1: u16 = 0x0004;
pub const TPM_ALG_SHA256: u16 = 0x000B;
pub const TPM_ALG_SHA384: u16 = 0x000C;
pub const TPM_ALG_NULL: u16 = 0x0010;
pub const TPM_ALG_AES: u16 = 0x0006;
pub const TPM_ALG_CFB: u16 = 0x0043;
pub const TPM_ALG_ECC: u16 = 0x0023;
pub const TPM_ALG_KEYEDHASH: u16 = 0x0008;
pub const TPM_ALG_HMAC: u16 = 0x0005;
pub const TPM_ALG_XOR: u16 = 0x000A;
pub const TPM_ALG_RSASSA: u16 = 0x0014;
pub const TPM_ALG_RSAES: u16 = 0x0015;
pub const TPM_ALG_RSAPSS: u16 = 0x0016;
pub const TPM_ALG_OAEP: u16 = 0x0017;
pub const TPM_ALG_ECDSA: u16 = 0x0018;
pub const TPM_ALG_ECDH: u16 = 0x0019;
pub const TPM_ALG_ECDAA: u16 = 0x001A;
pub const TPM_ALG_SM2: u16 = 0x001B;
pub const TPM_ALG_ECSCHNORR: u16 = 0x001C;
pub const TPM_ALG_ECMQV: u16 = 0x001D;
pub const TPM_ALG_MGF1: u16 = 0x0007;
pub const TPM_ALG_KDF1_SP800_56A: u16 = 0x0020;
pub const TPM_ALG_KDF2: u16 = 0x0021;
pub const TPM_ALG_KDF1_SP800_108: u16 = 0x0022;

/// The one RSA key size implemented (TPMI_RSA_KEY_BITS, Part 2 §11.2.4.6: 1024, 3072 and
/// 4096 are refused with that type's TPM_RC_VALUE).
pub const RSA_KEY_BITS: u16 = 2048;
/// MAX_RSA_KEY_BYTES (Part 2 §11.2.4.5 TPM2B_PUBLIC_KEY_RSA, §11.2.4.7
/// TPM2B_PRIVATE_KEY_RSA holds half of it: one prime).
pub const MAX_RSA_KEY_BYTES: usize = 256;
/// The public exponent TPMS_RSA_PARMS.exponent = 0 stands for (Part 2 §12.2.3.5: 2^16 + 1).
pub const RSA_DEFAULT_EXPONENT: u32 = 65537;

/// TPM_ECC_NIST_P256 (Part 2 §6.4, TPM_ECC_CURVE).
pub const TPM_ECC_NIST_P256: u16 = 0x0003;

/// The tag of a TPMT_TK_CREATION ticket (Part 2 §6.9).
pub const TPM_ST_CREATION: u16 = 0x8021;
/// The tag of a TPMT_TK_VERIFIED ticket (Part 2 §6.9).
pub const TPM_ST_VERIFIED: u16 = 0x8022;
/// TPMS_ATTEST.type of a TPM2_Quote (Part 2 §6.9).
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;

// TPMA_OBJECT (Part 2 §8.3, Table 31).
pub const TPMA_OBJECT_FIXED_TPM: u32 = 1 << 1;
pub const TPMA_OBJECT_ST_CLEAR: u32 = 1 << 2;
pub const TPMA_OBJECT_FIXED_PARENT: u32 = 1 << 4;
pub const TPMA_OBJECT_SENSITIVE_DATA_ORIGIN: u32 = 1 << 5;
pub const TPMA_OBJECT_USER_WITH_AUTH: u32 = 1 << 6;
pub const TPMA_OBJECT_ADMIN_WITH_POLICY: u32 = 1 << 7;
pub const TPMA_OBJECT_NO_DA: u32 = 1 << 10;
pub const TPMA_OBJECT_ENCRYPTED_DUPLICATION: u32 = 1 << 11;
pub const TPMA_OBJECT_RESTRICTED: u32 = 1 << 16;
pub const TPMA_OBJECT_DECRYPT: u32 = 1 << 17;
pub const TPMA_OBJECT_SIGN: u32 = 1 << 18;
pub const TPMA_OBJECT_X509_SIGN: u32 = 1 << 19;
/// The reserved bits of TPMA_OBJECT: 0, 3, 8, 9, 12-15, 20-31.
pub const TPMA_OBJECT_RESERVED: u32 = 0xFFF0_F309;

/// Transient object slots (MAX_LOADED_OBJECTS; the reference implementation has 3).
pub const MAX_LOADED_OBJECTS: usize = 3;
/// The first transient object handle (TRANSIENT_FIRST, Part 2 §7.5).
pub const TRANSIENT_FIRST: u32 = (TPM_HT_TRANSIENT as u32) << HR_SHIFT;
/// Persistent object handles (Part 2 §7.5, PERSISTENT_FIRST): the owner's range
/// 0x81000000-0x817FFFFF, then the platform's 0x81800000-0x81FFFFFF (PLATFORM_PERSISTENT,
/// Part 4 `NvIsOwnerPersistentHandle` / `NvIsPlatformPersistentHandle`).
pub const PERSISTENT_FIRST: u32 = (TPM_HT_PERSISTENT as u32) << HR_SHIFT;
pub const PLATFORM_PERSISTENT: u32 = PERSISTENT_FIRST + 0x0080_0000;
pub const PERSISTENT_LAST: u32 = PERSISTENT_FIRST + 0x00FF_FFFF;
/// Persistent object slots (TPM_PT_HR_PERSISTENT_MIN; the PC Client profile asks for 7).
pub const MAX_PERSISTENT_OBJECTS: usize = 7;

// TPM_SE (Part 2, the TPM_SE table after TPM_SU): the session types of TPM2_StartAuthSession.
pub const TPM_SE_HMAC: u8 = 0x00;
pub const TPM_SE_POLICY: u8 = 0x01;
pub const TPM_SE_TRIAL: u8 = 0x03;

/// TPMA_ALGORITHM (Part 2 §8.2, Table 32): bit 2, a hash algorithm.
pub const TPMA_ALGORITHM_HASH: u32 = 1 << 2;
pub const TPMA_ALGORITHM_ASYMMETRIC: u32 = 1 << 0;
pub const TPMA_ALGORITHM_SYMMETRIC: u32 = 1 << 1;
pub const TPMA_ALGORITHM_OBJECT: u32 = 1 << 3;
pub const TPMA_ALGORITHM_SIGNING: u32 = 1 << 8;
pub const TPMA_ALGORITHM_ENCRYPTING: u32 = 1 << 9;

// ---------------------------------------------------------------------------------------
// TPM_SU (Part 2 §6.11, Table 21).

pub const TPM_SU_CLEAR: u16 = 0x0000;
pub const TPM_SU_STATE: u16 = 0x0001;

// TPMI_YES_NO (Part 2 §9.2, Table 40).
pub const NO: u8 = 0;
pub const YES: u8 = 1;

// ---------------------------------------------------------------------------------------
// TPM_CAP (Part 2 §6.12, Table 22).

pub const TPM_CAP_ALGS: u32 = 0x0000_0000;
pub const TPM_CAP_HANDLES: u32 = 0x0000_0001;
pub const TPM_CAP_COMMANDS: u32 = 0x0000_0002;
pub const TPM_CAP_PP_COMMANDS: u32 = 0x0000_0003;
pub const TPM_CAP_AUDIT_COMMANDS: u32 = 0x0000_0004;
pub const TPM_CAP_PCRS: u32 = 0x0000_0005;
pub const TPM_CAP_TPM_PROPERTIES: u32 = 0x0000_0006;
pub const TPM_CAP_PCR_PROPERTIES: u32 = 0x0000_0007;
pub const TPM_CAP_ECC_CURVES: u32 = 0x0000_0008;
pub const TPM_CAP_AUTH_POLICIES: u32 = 0x0000_0009;
pub const TPM_CAP_ACT: u32 = 0x0000_000A;
pub const TPM_CAP_VENDOR_PROPERTY: u32 = 0x0000_0100;

// ---------------------------------------------------------------------------------------
// TPM_PT (Part 2 §6.13, Table 23): TPM properties. Fixed ones are PT_FIXED + n.

pub const PT_GROUP: u32 = 0x0000_0100;
pub const PT_FIXED: u32 = PT_GROUP;
pub const PT_VAR: u32 = PT_GROUP * 2;

pub const TPM_PT_FAMILY_INDICATOR: u32 = PT_FIXED;
pub const TPM_PT_LEVEL: u32 = PT_FIXED + 1;
pub const TPM_PT_REVISION: u32 = PT_FIXED + 2;
pub const TPM_PT_DAY_OF_YEAR: u32 = PT_FIXED + 3;
pub const TPM_PT_YEAR: u32 = PT_FIXED + 4;
pub const TPM_PT_MANUFACTURER: u32 = PT_FIXED + 5;
pub const TPM_PT_VENDOR_STRING_1: u32 = PT_FIXED + 6;
pub const TPM_PT_VENDOR_STRING_2: u32 = PT_FIXED + 7;
pub const TPM_PT_VENDOR_STRING_3: u32 = PT_FIXED + 8;
pub const TPM_PT_VENDOR_STRING_4: u32 = PT_FIXED + 9;
pub const TPM_PT_VENDOR_TPM_TYPE: u32 = PT_FIXED + 10;
pub const TPM_PT_FIRMWARE_VERSION_1: u32 = PT_FIXED + 11;
pub const TPM_PT_FIRMWARE_VERSION_2: u32 = PT_FIXED + 12;
pub const TPM_PT_INPUT_BUFFER: u32 = PT_FIXED + 13;
pub const TPM_PT_HR_TRANSIENT_MIN: u32 = PT_FIXED + 14;
pub const TPM_PT_HR_PERSISTENT_MIN: u32 = PT_FIXED + 15;
pub const TPM_PT_HR_LOADED_MIN: u32 = PT_FIXED + 16;
pub const TPM_PT_ACTIVE_SESSIONS_MAX: u32 = PT_FIXED + 17;
pub const TPM_PT_PCR_COUNT: u32 = PT_FIXED + 18;
pub const TPM_PT_PCR_SELECT_MIN: u32 = PT_FIXED + 19;
pub const TPM_PT_NV_INDEX_MAX: u32 = PT_FIXED + 23;
pub const TPM_PT_MAX_COMMAND_SIZE: u32 = PT_FIXED + 30;
pub const TPM_PT_MAX_RESPONSE_SIZE: u32 = PT_FIXED + 31;
pub const TPM_PT_MAX_DIGEST: u32 = PT_FIXED + 32;
pub const TPM_PT_TOTAL_COMMANDS: u32 = PT_FIXED + 41;
pub const TPM_PT_LIBRARY_COMMANDS: u32 = PT_FIXED + 42;
pub const TPM_PT_VENDOR_COMMANDS: u32 = PT_FIXED + 43;
pub const TPM_PT_NV_BUFFER_MAX: u32 = PT_FIXED + 44;
pub const TPM_PT_MODES: u32 = PT_FIXED + 45;
pub const TPM_PT_MAX_CAP_BUFFER: u32 = PT_FIXED + 46;

pub const TPM_PT_PERMANENT: u32 = PT_VAR;
pub const TPM_PT_STARTUP_CLEAR: u32 = PT_VAR + 1;
pub const TPM_PT_HR_NV_INDEX: u32 = PT_VAR + 2;
pub const TPM_PT_HR_LOADED: u32 = PT_VAR + 3;
pub const TPM_PT_HR_LOADED_AVAIL: u32 = PT_VAR + 4;
pub const TPM_PT_HR_ACTIVE: u32 = PT_VAR + 5;
pub const TPM_PT_HR_ACTIVE_AVAIL: u32 = PT_VAR + 6;
pub const TPM_PT_HR_TRANSIENT_AVAIL: u32 = PT_VAR + 7;
pub const TPM_PT_HR_PERSISTENT: u32 = PT_VAR + 8;
pub const TPM_PT_HR_PERSISTENT_AVAIL: u32 = PT_VAR + 9;

/// TPMA_PERMANENT (Part 2 §8.6, Table 39) bit 10: the EPS was generated by the TPM.
pub const TPMA_PERMANENT_TPM_GENERATED_EPS: u32 = 1 << 10;
/// TPMA_STARTUP_CLEAR (Part 2 §8.7, Table 40): phEnable, shEnable, ehEnable, phEnableNV
/// (bits 0-3), all SET by TPM2_Startup(CLEAR) and not changeable here yet.
pub const TPMA_STARTUP_CLEAR_ENABLES: u32 = 0xF;
/// TPMA_STARTUP_CLEAR bit 31: the last Startup followed a matching Shutdown.
pub const TPMA_STARTUP_CLEAR_ORDERLY: u32 = 1 << 31;

// TPM_PT_PCR (Part 2 §6.14, Table 24): PCR property tags for TPM_CAP_PCR_PROPERTIES.
pub const TPM_PT_PCR_SAVE: u32 = 0x00;
pub const TPM_PT_PCR_EXTEND_L0: u32 = 0x01;
pub const TPM_PT_PCR_RESET_L0: u32 = 0x02;
pub const TPM_PT_PCR_NO_INCREMENT: u32 = 0x11;
pub const TPM_PT_PCR_LAST: u32 = 0x14;

// ---------------------------------------------------------------------------------------
// TPMA_NV (Part 2 §13.4, Table 204): NV index attributes.

pub const TPMA_NV_PPWRITE: u32 = 1 << 0;
pub const TPMA_NV_OWNERWRITE: u32 = 1 << 1;
pub const TPMA_NV_AUTHWRITE: u32 = 1 << 2;
pub const TPMA_NV_POLICYWRITE: u32 = 1 << 3;
/// TPM_NT, bits 7:4 (Part 2 §13.2, Table 202).
pub const TPMA_NV_TPM_NT_SHIFT: u32 = 4;
pub const TPMA_NV_TPM_NT_MASK: u32 = 0xF << TPMA_NV_TPM_NT_SHIFT;
pub const TPMA_NV_POLICY_DELETE: u32 = 1 << 10;
pub const TPMA_NV_WRITELOCKED: u32 = 1 << 11;
pub const TPMA_NV_WRITEALL: u32 = 1 << 12;
pub const TPMA_NV_WRITEDEFINE: u32 = 1 << 13;
pub const TPMA_NV_WRITE_STCLEAR: u32 = 1 << 14;
pub const TPMA_NV_GLOBALLOCK: u32 = 1 << 15;
pub const TPMA_NV_PPREAD: u32 = 1 << 16;
pub const TPMA_NV_OWNERREAD: u32 = 1 << 17;
pub const TPMA_NV_AUTHREAD: u32 = 1 << 18;
pub const TPMA_NV_POLICYREAD: u32 = 1 << 19;
pub const TPMA_NV_NO_DA: u32 = 1 << 25;
pub const TPMA_NV_ORDERLY: u32 = 1 << 26;
pub const TPMA_NV_CLEAR_STCLEAR: u32 = 1 << 27;
pub const TPMA_NV_READLOCKED: u32 = 1 << 28;
pub const TPMA_NV_WRITTEN: u32 = 1 << 29;
pub const TPMA_NV_PLATFORMCREATE: u32 = 1 << 30;
pub const TPMA_NV_READ_STCLEAR: u32 = 1 << 31;
/// Reserved: bits 9:8 and 24:20 (TPM_RC_RESERVED_BITS when set).
pub const TPMA_NV_RESERVED: u32 = 0x0000_0300 | 0x01F0_0000;
/// TPM_NT_ORDINARY (Part 2 §13.2, Table 202): the only index type implemented.
pub const TPM_NT_ORDINARY: u32 = 0x0;

// ---------------------------------------------------------------------------------------
// Handles (Part 2 §7): the type is the top octet (TPM_HT, Table 27).

pub const HR_SHIFT: u32 = 24;
pub const TPM_HT_PCR: u8 = 0x00;
pub const TPM_HT_NV_INDEX: u8 = 0x01;
pub const TPM_HT_HMAC_SESSION: u8 = 0x02;
pub const TPM_HT_POLICY_SESSION: u8 = 0x03;
pub const TPM_HT_PERMANENT: u8 = 0x40;
pub const TPM_HT_TRANSIENT: u8 = 0x80;
pub const TPM_HT_PERSISTENT: u8 = 0x81;

/// NV index handles (Part 2 §7.3, Table 28 / §7.5, Table 29: NV_INDEX_FIRST..NV_INDEX_LAST).
pub const NV_INDEX_FIRST: u32 = (TPM_HT_NV_INDEX as u32) << HR_SHIFT;
pub const NV_INDEX_LAST: u32 = NV_INDEX_FIRST + 0x00FF_FFFF;

// TPM_RH (Part 2 §7.4, Table 28): permanent handles.
pub const TPM_RH_OWNER: u32 = 0x4000_0001;
pub const TPM_RH_NULL: u32 = 0x4000_0007;
/// TPM_RS_PW: the password authorization "session".
pub const TPM_RS_PW: u32 = 0x4000_0009;
pub const TPM_RH_LOCKOUT: u32 = 0x4000_000A;
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;
pub const TPM_RH_PLATFORM: u32 = 0x4000_000C;
pub const TPM_RH_PLATFORM_NV: u32 = 0x4000_000D;
pub const TPM_RH_ACT_0: u32 = 0x4000_0110;
pub const TPM_RH_ACT_F: u32 = 0x4000_011F;

// Session handle ranges (Part 2 §7.5, Table 29): HMAC_SESSION_FIRST..+0xFFFFFE and
// POLICY_SESSION_FIRST..+0xFFFFFE.
pub const HMAC_SESSION_FIRST: u32 = (TPM_HT_HMAC_SESSION as u32) << HR_SHIFT;
pub const HMAC_SESSION_LAST: u32 = HMAC_SESSION_FIRST + 0x00FF_FFFE;
pub const POLICY_SESSION_FIRST: u32 = (TPM_HT_POLICY_SESSION as u32) << HR_SHIFT;
pub const POLICY_SESSION_LAST: u32 = POLICY_SESSION_FIRST + 0x00FF_FFFE;

// TPMA_SESSION (Part 2 §8.4, Table 37).
pub const TPMA_SESSION_CONTINUE_SESSION: u8 = 1 << 0;
/// auditExclusive, auditReset (bits 1, 2).
pub const TPMA_SESSION_AUDIT_EXCLUSIVE: u8 = 1 << 1;
pub const TPMA_SESSION_AUDIT_RESET: u8 = 1 << 2;
/// Bits 3 and 4 are reserved (TPM_RC_RESERVED_BITS when set).
pub const TPMA_SESSION_RESERVED: u8 = 0x18;
/// decrypt, encrypt, audit (bits 5-7).
pub const TPMA_SESSION_DECRYPT: u8 = 1 << 5;
pub const TPMA_SESSION_ENCRYPT: u8 = 1 << 6;
pub const TPMA_SESSION_AUDIT: u8 = 1 << 7;

// ---------------------------------------------------------------------------------------
// Implementation limits (Part 2 §5 "Implementation values"; the values the TCG reference
// implementation's TpmProfile.h uses for a PC Client TPM where a choice is ours).

/// Command and response buffers: 4096 bytes, the TIS/CRB buffer size Linux uses.
pub const MAX_COMMAND_SIZE: usize = 4096;
pub const MAX_RESPONSE_SIZE: usize = 4096;
/// Octets of the header every command and response starts with (tag, size, code).
pub const HEADER_SIZE: usize = 10;
/// Authorization sessions one command may carry (MAX_SESSION_NUM).
pub const MAX_SESSION_NUM: usize = 3;
/// Session slots: HMAC and policy sessions loaded at once (MAX_LOADED_SESSIONS; the
/// reference implementation's value is 3, the PC Client minimum). StartAuthSession beyond
/// it is TPM_RC_SESSION_MEMORY. A saved session keeps its slot, so this also bounds the
/// active (loaded + saved) sessions.
pub const MAX_LOADED_SESSIONS: usize = 3;
/// The buffer of TPM2B_CONTEXT_DATA (Part 2 §14.5, MAX_CONTEXT_SIZE): a session context
/// blob here is under 250 octets, an event sequence's (three hash states) under 500.
pub const MAX_CONTEXT_SIZE: usize = 1024;
/// TPMI_DH_SAVED's transient-object values (Part 2 §15.3): an ordinary object, a sequence
/// object, and an object with TPMA_OBJECT_stClear.
pub const SAVED_OBJECT: u32 = 0x8000_0000;
pub const SAVED_SEQUENCE: u32 = 0x8000_0001;
pub const SAVED_STCLEAR: u32 = 0x8000_0002;
/// The smallest nonceCaller StartAuthSession accepts (Part 3 §11.1: 16 octets).
pub const MIN_NONCE_SIZE: usize = 16;
/// The largest TPM2B_MAX_BUFFER (MAX_DIGEST_BUFFER), reported as TPM_PT_INPUT_BUFFER.
pub const MAX_DIGEST_BUFFER: u32 = 1024;
/// TPM2B_EVENT's buffer (Part 2 §10.4.7: 1024 octets).
pub const MAX_EVENT_DATA: usize = 1024;
/// MAX_NV_INDEX_SIZE: the largest dataSize of an ordinary NV index, reported as
/// TPM_PT_NV_INDEX_MAX (the reference implementation's value).
pub const MAX_NV_INDEX_SIZE: u16 = 2048;
/// MAX_NV_BUFFER_SIZE: the bound of TPM2B_MAX_NV_BUFFER, the most one NV_Write or NV_Read
/// moves, reported as TPM_PT_NV_BUFFER_MAX.
pub const MAX_NV_BUFFER_SIZE: usize = 1024;
/// NV index space (Part 1 §37 "NV memory"): at most this many indices, whose data together
/// fill at most [`NV_INDEX_SPACE`] octets; beyond either NV_DefineSpace is TPM_RC_NV_SPACE.
pub const MAX_NV_INDICES: usize = 64;
pub const NV_INDEX_SPACE: usize = 16384;
/// MAX_SYM_DATA, the bound of TPM2B_SENSITIVE_DATA (Part 2 §11.1.14: 128 is the minimum a
/// TPM may choose, and what the reference implementation uses).
pub const MAX_SYM_DATA: usize = 128;
/// TPML_ALG's bound (MAX_ALG_LIST_SIZE).
pub const MAX_ALG_LIST_SIZE: usize = 64;
/// MAX_CAP_BUFFER: TPMS_CAPABILITY_DATA is at most this many octets; the list bounds
/// below are what fits after `capability` and `count` (Part 2 §10.9 notes).
pub const MAX_CAP_BUFFER: u32 = 1024;
pub const MAX_CAP_DATA: u32 = MAX_CAP_BUFFER - 4 - 4;
/// TPMS_ALG_PROPERTY is 6 octets.
pub const MAX_CAP_ALGS: u32 = MAX_CAP_DATA / 6;
pub const MAX_CAP_HANDLES: u32 = MAX_CAP_DATA / 4;
pub const MAX_CAP_CC: u32 = MAX_CAP_DATA / 4;
/// TPMS_TAGGED_PROPERTY is 8 octets.
pub const MAX_TPM_PROPERTIES: u32 = MAX_CAP_DATA / 8;
/// TPMS_TAGGED_PCR_SELECT is 4 + 1 + PCR_SELECT_MAX octets.
pub const MAX_PCR_PROPERTIES: u32 = MAX_CAP_DATA / 8;
