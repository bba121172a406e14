//! UIDs we act on (SOP classes, transfer syntaxes), the rules that make a
//! UID safe to use as a file name or conformant to write, and the making of
//! new ones under a configured root.

use dicom_core::dictionary::UidDictionary;
use dicom_dictionary_std::StandardSopClassDictionary;

/// Verification SOP Class (C-ECHO).
pub const VERIFICATION: &str = "1.2.840.10008.1.1";
/// DICOM Application Context Name, proposed and accepted in every association.
pub const APPLICATION_CONTEXT: &str = "1.2.840.10008.3.1.1.1";

/// CT Image Storage SOP Class.
pub const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
/// RT Structure Set Storage SOP Class.
pub const RT_STRUCTURE_SET_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.3";
/// RT Plan Storage SOP Class (photons and electrons).
pub const RT_PLAN_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.5";
/// RT Ion Plan Storage SOP Class (protons and ions).
pub const RT_ION_PLAN_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.8";
/// RT Dose Storage SOP Class.
pub const RT_DOSE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.481.2";

/// Implicit VR Little Endian transfer syntax, the default every DICOM node supports.
pub const IMPLICIT_VR_LE: &str = "1.2.840.10008.1.2";
/// Explicit VR Little Endian transfer syntax.
pub const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
/// Deflated Explicit VR Little Endian transfer syntax.
pub const DEFLATED_EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1.99";
/// Explicit VR Big Endian transfer syntax (retired).
pub const EXPLICIT_VR_BE: &str = "1.2.840.10008.1.2.2";
/// RLE Lossless transfer syntax.
pub const RLE_LOSSLESS: &str = "1.2.840.10008.1.2.5";

/// Transfer syntaxes we store exactly as received and that dicom-pixeldata
/// (with the features this crate enables) can decode later. The order is
/// irrelevant: we take the first one the requestor proposed, since a sender
/// lists its preference first.
pub const ACCEPTED_TRANSFER_SYNTAXES: &[&str] = &[
    IMPLICIT_VR_LE,
    EXPLICIT_VR_LE,
    DEFLATED_EXPLICIT_VR_LE,
    EXPLICIT_VR_BE,
    "1.2.840.10008.1.2.4.50", // JPEG baseline
    "1.2.840.10008.1.2.4.51", // JPEG extended
    "1.2.840.10008.1.2.4.57", // JPEG lossless
    "1.2.840.10008.1.2.4.70", // JPEG lossless SV1
    "1.2.840.10008.1.2.4.80", // JPEG-LS lossless
    "1.2.840.10008.1.2.4.81", // JPEG-LS near-lossless
    "1.2.840.10008.1.2.4.90", // JPEG 2000 lossless
    "1.2.840.10008.1.2.4.91", // JPEG 2000
    RLE_LOSSLESS,
];

/// True when the SCP accepts data sets in transfer syntax `uid`; see `ACCEPTED_TRANSFER_SYNTAXES`.
pub fn is_accepted_transfer_syntax(uid: &str) -> bool {
    ACCEPTED_TRANSFER_SYNTAXES.contains(&uid)
}

/// A storage SOP class of the standard: every "... Storage" class under the
/// storage branch, retired ones included since archives still hold them.
pub fn is_storage_sop_class(uid: &str) -> bool {
    if !uid.starts_with("1.2.840.10008.5.1.4.1.1.") {
        return false;
    }
    StandardSopClassDictionary
        .by_uid(uid)
        .is_some_and(|e| e.name.contains("Storage"))
}

/// The UID of a SOP class keyword such as `RTStructureSetStorage`.
pub fn sop_class_keyword_uid(keyword: &str) -> Option<&'static str> {
    StandardSopClassDictionary
        .by_keyword(keyword)
        .map(|e| e.uid)
}

/// A data element tag from its keyword (`SeriesDescription`).
pub fn tag_by_keyword(keyword: &str) -> Option<dicom_core::Tag> {
    use dicom_core::dictionary::DataDictionary;
    dicom_dictionary_std::StandardDataDictionary
        .by_name(keyword)
        .map(|e| e.tag.inner())
}

/// The standard's name of a SOP class UID, or "unknown SOP class".
pub fn sop_class_name(uid: &str) -> &'static str {
    StandardSopClassDictionary
        .by_uid(uid)
        .map(|e| e.name)
        .unwrap_or("unknown SOP class")
}

/// A UID that `check_uid` lets in, and whether it is strictly conformant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UidCheck {
    /// Conformant: digits and dots, at most 64 characters, no component with a leading zero.
    Valid,
    /// Legal to store, but not conformant: some archives emit components
    /// with leading zeros, and refusing them would lose real data.
    LeadingZeroComponent,
}

/// Why `check_uid` refused a UID.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum UidError {
    /// The UID is empty.
    Empty,
    /// The UID is longer than 64 characters (its length is given).
    TooLong(usize),
    /// The UID contains something other than digits and dots (the first such character).
    BadCharacter(char),
    /// The UID has an empty component (two dots in a row, or a leading or trailing dot).
    EmptyComponent,
}

impl std::fmt::Display for UidError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UidError::Empty => f.write_str("empty UID"),
            UidError::TooLong(n) => write!(f, "UID of {n} characters (at most 64)"),
            UidError::BadCharacter(c) => write!(f, "UID contains {c:?}"),
            UidError::EmptyComponent => f.write_str("UID has an empty component"),
        }
    }
}

impl std::error::Error for UidError {}

/// Checks a UID before it is ever used in a path: digits and dots only, at
/// most 64 characters, no empty component. That alone rules out `..`, `/`,
/// NUL and every other way out of the store directory.
pub fn check_uid(uid: &str) -> Result<UidCheck, UidError> {
    if uid.is_empty() {
        return Err(UidError::Empty);
    }
    if uid.len() > 64 {
        return Err(UidError::TooLong(uid.len()));
    }
    if let Some(c) = uid.chars().find(|c| !c.is_ascii_digit() && *c != '.') {
        return Err(UidError::BadCharacter(c));
    }
    let mut result = UidCheck::Valid;
    for component in uid.split('.') {
        if component.is_empty() {
            return Err(UidError::EmptyComponent);
        }
        if component.len() > 1 && component.starts_with('0') {
            result = UidCheck::LeadingZeroComponent;
        }
    }
    Ok(result)
}

/// Whether `uid` is a conformant DICOM UID (PS3.5 9.1): at most 64
/// characters, dot-separated non-empty numeric components without leading
/// zeros. Stricter than [`check_uid`], which also lets leading zeros in.
pub fn is_valid_uid(uid: &str) -> bool {
    matches!(check_uid(uid), Ok(UidCheck::Valid))
}

/// How many random digits a generated UID keeps at least, which bounds how
/// long a root may be.
pub const MIN_UID_RANDOM_DIGITS: usize = 20;

/// A UID root that cannot prefix generated UIDs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UidRootError {
    /// The root is not a conformant UID.
    #[error("invalid UID root {0:?}")]
    Invalid(String),
    #[error(
        "UID root {0:?} is too long: at least {MIN_UID_RANDOM_DIGITS} characters must remain for random digits"
    )]
    /// The root leaves fewer than `MIN_UID_RANDOM_DIGITS` characters for the random part.
    TooLong(String),
}

/// Checks that `root` is a conformant UID short enough to leave
/// [`MIN_UID_RANDOM_DIGITS`] digits under it.
pub fn check_uid_root(root: &str) -> Result<(), UidRootError> {
    if !is_valid_uid(root) {
        return Err(UidRootError::Invalid(root.to_string()));
    }
    if root.len() + 1 + MIN_UID_RANDOM_DIGITS > 64 {
        return Err(UidRootError::TooLong(root.to_string()));
    }
    Ok(())
}

/// `<root>.<random decimal>`. The random part is a version-4 UUID read as
/// an integer, which is exactly what the "2.25" root (ISO/IEC 9834-8)
/// calls for; under longer roots it is truncated to fit 64 characters.
pub fn generate_uid<R: rand::Rng + ?Sized>(
    root: &str,
    rng: &mut R,
) -> Result<String, UidRootError> {
    check_uid_root(root)?;
    let mut value: u128 = rng.gen();
    value &= !(0xF_u128 << 76);
    value |= 0x4_u128 << 76; // version 4
    value &= !(0x3_u128 << 62);
    value |= 0x2_u128 << 62; // RFC 4122 variant
    let mut digits = value.to_string();
    // Truncating a decimal string keeps its non-zero leading digit.
    digits.truncate(64 - root.len() - 1);
    let uid = format!("{root}.{digits}");
    debug_assert!(is_valid_uid(&uid));
    Ok(uid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_uids_are_valid_and_distinct() {
        use std::collections::HashSet;
        let mut rng = rand::thread_rng();
        let mut seen = HashSet::new();
        for root in ["2.25", "1.2.826.0.1.3680043.10.543.42", "9"] {
            for _ in 0..2000 {
                let uid = generate_uid(root, &mut rng).unwrap();
                assert!(is_valid_uid(&uid), "{uid}");
                assert!(uid.starts_with(&format!("{root}.")));
                assert!(seen.insert(uid));
            }
        }
        for bad in ["", "1..2", "1.02", ".1", "1.", "1.a", &"1".repeat(65)] {
            assert!(!is_valid_uid(bad), "{bad:?}");
        }
        assert!(is_valid_uid("1.0.2"));
        assert!(generate_uid("1.02", &mut rng).is_err());
        assert!(generate_uid(&"1".repeat(44), &mut rng).is_err());
        assert!(generate_uid(&"1".repeat(43), &mut rng).is_ok());
    }

    #[test]
    fn path_traversal_is_not_a_uid() {
        assert!(check_uid("../../etc/x").is_err());
        assert!(check_uid("1.2/3").is_err());
        assert!(check_uid("1..2").is_err());
        assert!(check_uid(".1.2").is_err());
        assert!(check_uid("1.2.").is_err());
        assert!(check_uid("1.2\0").is_err());
        assert!(check_uid("").is_err());
        assert!(check_uid(&"1".repeat(65)).is_err());
    }

    #[test]
    fn leading_zeros_are_stored_with_a_warning() {
        assert_eq!(check_uid("1.2.840.10008.1.2"), Ok(UidCheck::Valid));
        assert_eq!(check_uid("1.2.0"), Ok(UidCheck::Valid));
        assert_eq!(check_uid("1.02.3"), Ok(UidCheck::LeadingZeroComponent));
        assert_eq!(check_uid(&"1".repeat(64)), Ok(UidCheck::Valid));
    }

    #[test]
    fn rt_classes_are_storage_classes() {
        for uid in [
            CT_IMAGE_STORAGE,
            RT_STRUCTURE_SET_STORAGE,
            RT_PLAN_STORAGE,
            RT_ION_PLAN_STORAGE,
            RT_DOSE_STORAGE,
            "1.2.840.10008.5.1.4.1.1.481.1", // RT Image
            "1.2.840.10008.5.1.4.1.1.4",     // MR
            "1.2.840.10008.5.1.4.1.1.128",   // PET
            "1.2.840.10008.5.1.4.1.1.66.1",  // Spatial Registration
            "1.2.840.10008.5.1.4.1.1.7",     // Secondary Capture
            "1.2.840.10008.5.1.4.1.1.104.1", // Encapsulated PDF
        ] {
            assert!(is_storage_sop_class(uid), "{uid}");
        }
        assert!(!is_storage_sop_class(VERIFICATION));
        assert!(!is_storage_sop_class("1.2.840.10008.5.1.4.1.2.2.1")); // Q/R FIND
    }
}
