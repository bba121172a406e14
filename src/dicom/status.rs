//! DIMSE status codes (PS3.7 Annex C) as a type: what rtnode answers with,
//! what it reads back from peers, and how each reads to a person.
//!
//! A status is a newtype over the 16-bit code rather than a closed enum:
//! peers send codes this crate has no name for (vendor-specific Axxx/Cxxx),
//! and those must survive decoding, logging and the export queue's records
//! unchanged. The codes rtnode uses have named constants, and
//! [`DimseStatus::category`] sorts any code into the classes Annex C
//! defines.

use serde::{Deserialize, Serialize};

/// One DIMSE status code, as carried in the command set's Status (0000,0900).
/// Serialises as the bare number, as the `u16` it replaced did.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DimseStatus(pub u16);

/// The classes of PS3.7 C.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusCategory {
    /// 0000: the operation completed.
    Success,
    /// 0001, 0107, 0116 and Bxxx: completed, with something to note (a C-STORE so answered was stored).
    Warning,
    /// Axxx, Cxxx and any other failure code: not done.
    Failure,
    /// FE00: the operation was cancelled.
    Cancel,
    /// FF00, FF01: more responses follow.
    Pending,
}

impl DimseStatus {
    /// 0000: Success.
    pub const SUCCESS: DimseStatus = DimseStatus(0x0000);
    /// B000: Warning, coercion of data elements (C-STORE).
    pub const COERCION_OF_DATA_ELEMENTS: DimseStatus = DimseStatus(0xB000);
    /// B006: Warning, elements discarded (C-STORE).
    pub const ELEMENTS_DISCARDED: DimseStatus = DimseStatus(0xB006);
    /// B007: Warning, data set does not match SOP class (C-STORE).
    pub const DATA_SET_DOES_NOT_MATCH_WARNING: DimseStatus = DimseStatus(0xB007);
    /// 0110: Failure, processing failure.
    pub const PROCESSING_FAILURE: DimseStatus = DimseStatus(0x0110);
    /// 0122: Refused, SOP class not supported.
    pub const SOP_CLASS_NOT_SUPPORTED: DimseStatus = DimseStatus(0x0122);
    /// 0124: Refused, not authorized.
    pub const NOT_AUTHORIZED: DimseStatus = DimseStatus(0x0124);
    /// 0211: Failure, unrecognised operation.
    pub const UNRECOGNIZED_OPERATION: DimseStatus = DimseStatus(0x0211);
    /// A700: Refused, out of resources (disk below the low-watermark, write
    /// failure). The whole A7xx range means this.
    pub const OUT_OF_RESOURCES: DimseStatus = DimseStatus(0xA700);
    /// A900: Error, data set does not match SOP class (A9xx).
    pub const DATA_SET_DOES_NOT_MATCH: DimseStatus = DimseStatus(0xA900);
    /// C000: Error, cannot understand (unparseable data set; Cxxx).
    pub const CANNOT_UNDERSTAND: DimseStatus = DimseStatus(0xC000);
    /// C001 (in the C000 range, implementation specific): a UID that cannot
    /// be stored safely (not digits and dots, too long, empty component).
    pub const INVALID_UID: DimseStatus = DimseStatus(0xC001);
    /// FE00: Cancel.
    pub const CANCEL: DimseStatus = DimseStatus(0xFE00);
    /// FF00: Pending.
    pub const PENDING: DimseStatus = DimseStatus(0xFF00);

    /// The code on the wire.
    pub fn code(self) -> u16 {
        self.0
    }

    /// The class PS3.7 C.1 puts this code in; codes not named there are
    /// failures.
    pub fn category(self) -> StatusCategory {
        match self.0 {
            0x0000 => StatusCategory::Success,
            0x0001 | 0x0107 | 0x0116 | 0xB000..=0xBFFF => StatusCategory::Warning,
            0xFE00 => StatusCategory::Cancel,
            0xFF00 | 0xFF01 => StatusCategory::Pending,
            _ => StatusCategory::Failure,
        }
    }

    /// Whether a C-STORE response with this status means the peer stored
    /// the instance: success or a B-range warning (PS3.4 B.2.3).
    pub fn stored(self) -> bool {
        self == Self::SUCCESS || self.is_store_warning()
    }

    /// A C-STORE warning (Bxxx): stored, with a remark.
    pub fn is_store_warning(self) -> bool {
        (0xB000..=0xBFFF).contains(&self.0)
    }

    /// Refused for lack of resources (A7xx): worth trying again later.
    pub fn is_out_of_resources(self) -> bool {
        (0xA700..=0xA7FF).contains(&self.0)
    }

    /// How a C-STORE status reads to a person (PS3.4 Annex B.2.3).
    pub fn describe(self) -> &'static str {
        match self.0 {
            0x0000 => "Success",
            0xB000 | 0xB007 | 0xB006 => "Warning",
            0x0122 => "Refused: SOP class not supported",
            0x0124 => "Refused: not authorized",
            0xA700..=0xA7FF => "Refused: out of resources",
            0xA900..=0xA9FF => "Error: data set does not match SOP class",
            0xC000..=0xCFFF => "Error: cannot understand",
            0x0110 => "Failure: processing failure",
            0x0211 => "Failure: unrecognized operation",
            _ => "Failure",
        }
    }
}

impl From<u16> for DimseStatus {
    fn from(code: u16) -> Self {
        DimseStatus(code)
    }
}

impl From<DimseStatus> for u16 {
    fn from(s: DimseStatus) -> u16 {
        s.0
    }
}

/// Formats as the bare number, as the `u16` it replaced did.
impl std::fmt::Debug for DimseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Debug::fmt(&self.0, f)
    }
}

/// `{:04X}`: the code as the standard writes it.
impl std::fmt::UpperHex for DimseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::UpperHex::fmt(&self.0, f)
    }
}

/// `{:04x}`, for metric names.
impl std::fmt::LowerHex for DimseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::LowerHex::fmt(&self.0, f)
    }
}

/// `C000 Error: cannot understand`.
impl std::fmt::Display for DimseStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:04X} {}", self.0, self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn categories_follow_annex_c() {
        use StatusCategory::*;
        for (code, cat) in [
            (0x0000, Success),
            (0xB000, Warning),
            (0xB007, Warning),
            (0x0001, Warning),
            (0xA700, Failure),
            (0xA7FF, Failure),
            (0xA900, Failure),
            (0xC000, Failure),
            (0xC123, Failure),
            (0x0110, Failure),
            (0x0122, Failure),
            (0x0211, Failure),
            (0xFE00, Cancel),
            (0xFF00, Pending),
            (0xFF01, Pending),
        ] {
            assert_eq!(DimseStatus(code).category(), cat, "{code:04X}");
        }
    }

    #[test]
    fn store_verdicts() {
        assert!(DimseStatus::SUCCESS.stored());
        assert!(DimseStatus(0xB006).stored());
        assert!(!DimseStatus(0x0001).stored());
        assert!(!DimseStatus::OUT_OF_RESOURCES.stored());
        assert!(DimseStatus(0xA7F0).is_out_of_resources());
        assert!(!DimseStatus(0xA900).is_out_of_resources());
    }

    #[test]
    fn unknown_codes_survive_and_read_like_numbers() {
        let s = DimseStatus(0xC7A3);
        assert_eq!(s.code(), 0xC7A3);
        assert_eq!(format!("{s:04X}"), "C7A3");
        assert_eq!(format!("{s:04x}"), "c7a3");
        assert_eq!(s.to_string(), "C7A3 Error: cannot understand");
        assert_eq!(format!("{:?}", Some(s)), format!("{:?}", Some(0xC7A3u16)));
        assert_eq!(serde_json::to_string(&s).unwrap(), "51107");
        assert_eq!(serde_json::from_str::<DimseStatus>("51107").unwrap(), s);
    }
}
