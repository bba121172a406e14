//! Value formatting for the VRs rtnode writes by hand: DS (decimal string,
//! at most 16 characters) and DA/TM (date and time, always UTC here). One
//! rule per VR, shared by every writer (the derived-object writers and the
//! synthetic test data), so that no two writers round or date differently.

use dicom_core::PrimitiveValue;

/// A value that has no encoding in the VR asked for.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ValueError {
    /// NaN or an infinity.
    #[error("cannot encode {0} as a decimal string")]
    NotFinite(f64),
    /// Too large in magnitude for 16 characters, at any precision.
    #[error("{0} does not fit in a 16-character decimal string")]
    TooLong(f64),
}

/// Formats a value as a DICOM DS (at most 16 characters), using the
/// shortest exact representation when it fits and rounding otherwise.
pub fn format_ds(v: f64) -> Result<String, ValueError> {
    if !v.is_finite() {
        return Err(ValueError::NotFinite(v));
    }
    // Avoid "-0", which is valid but looks like a sign error to readers.
    let v = if v == 0.0 { 0.0 } else { v };
    let shortest = v.to_string();
    if shortest.len() <= 16 {
        return Ok(shortest);
    }
    for decimals in (0..=15).rev() {
        let mut s = format!("{v:.decimals$}");
        if s.contains('.') {
            let trimmed = s.trim_end_matches('0').trim_end_matches('.').len();
            s.truncate(trimmed);
        }
        if s == "-0" {
            s = "0".to_string();
        }
        if s.len() <= 16 {
            return Ok(s);
        }
    }
    Err(ValueError::TooLong(v))
}

/// A multi-valued DS (`a\b\c`), each value as [`format_ds`] writes it.
pub fn ds_values(values: &[f64]) -> Result<PrimitiveValue, ValueError> {
    Ok(PrimitiveValue::Strs(
        values
            .iter()
            .map(|v| format_ds(*v))
            .collect::<Result<Vec<_>, _>>()?
            .into(),
    ))
}

/// A DS with fixed precision: `decimals` places, trailing zeros and a
/// negative zero dropped. Contour coordinates use 3 (micrometres).
pub fn ds_fixed(v: f64, decimals: usize) -> String {
    let mut s = format!("{v:.decimals$}");
    if s.contains('.') {
        let t = s.trim_end_matches('0').trim_end_matches('.').len();
        s.truncate(t);
    }
    if s == "-0" {
        s = "0".into();
    }
    s
}

/// The current UTC date and time as DICOM DA (`YYYYMMDD`) and TM
/// (`HHMMSS`). Writers say the offset (`+0000`) where the IOD has room.
pub fn now_da_tm() -> (String, String) {
    da_tm(std::time::SystemTime::now())
}

/// `t` in UTC as DICOM DA and TM. A time before 1970 is a broken clock and
/// reads as the epoch, so that the files written stay valid.
pub fn da_tm(t: std::time::SystemTime) -> (String, String) {
    let t = t.max(std::time::UNIX_EPOCH);
    // "YYYY-MM-DDTHH:MM:SSZ"
    let s = humantime::format_rfc3339_seconds(t).to_string();
    let digits: String = s.chars().filter(char::is_ascii_digit).collect();
    (digits[..8].to_string(), digits[8..14].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn ds_formatting_fits_and_round_trips() {
        assert_eq!(format_ds(1.953125).unwrap(), "1.953125");
        assert_eq!(format_ds(-0.0).unwrap(), "0");
        assert_eq!(format_ds(-1024.0).unwrap(), "-1024");
        for v in [
            1.0 / 3.0,
            -249.0234375,
            500.0 / 7.0,
            -123456.789012345,
            1e-9,
            12345678901234.5,
        ] {
            let s = format_ds(v).unwrap();
            assert!(s.len() <= 16, "{s}");
            let back: f64 = s.parse().unwrap();
            assert!((back - v).abs() <= 1e-6 * v.abs().max(1.0), "{v} -> {s}");
            assert_eq!(format_ds(back).unwrap().parse::<f64>().unwrap(), back);
        }
        assert!(format_ds(f64::INFINITY).is_err());
        assert!(format_ds(1e300).is_err());
    }

    #[test]
    fn fixed_precision() {
        assert_eq!(ds_fixed(1.5, 3), "1.5");
        assert_eq!(ds_fixed(-0.0001, 3), "0");
        assert_eq!(ds_fixed(-12.34567, 3), "-12.346");
        assert_eq!(ds_fixed(200.0, 3), "200");
    }

    #[test]
    fn dates_and_times() {
        assert_eq!(da_tm(UNIX_EPOCH), ("19700101".into(), "000000".into()));
        let leap = UNIX_EPOCH + Duration::from_secs(19_782 * 86_400 + 3_723);
        assert_eq!(da_tm(leap), ("20240229".into(), "010203".into()));
        let y2k = UNIX_EPOCH + Duration::from_secs(11_016 * 86_400 + 86_399);
        assert_eq!(da_tm(y2k), ("20000229".into(), "235959".into()));
        let (da, tm) = now_da_tm();
        assert_eq!((da.len(), tm.len()), (8, 6));
    }
}
