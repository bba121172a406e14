//! DICOM JSON (PS3.18 F.2) for the attributes this node answers with: a
//! data set is a JSON object keyed by tag (`"0020000D"`), each value
//! `{"vr": .., "Value": [..]}`.

use serde_json::{json, Map, Value};

/// A DICOM JSON data set being built.
#[derive(Debug, Default, Clone)]
pub struct DataSet(Map<String, Value>);

impl DataSet {
    /// An empty data set.
    pub fn new() -> DataSet {
        DataSet::default()
    }

    /// A string attribute (UI, CS, DA, LO, SH, ...); an empty value is
    /// written without `Value`, as PS3.18 F.2.5 has it for a present but
    /// empty attribute.
    pub fn text(mut self, tag: u32, vr: &str, value: &str) -> DataSet {
        let v = if value.is_empty() {
            json!({ "vr": vr })
        } else {
            json!({ "vr": vr, "Value": [value] })
        };
        self.0.insert(format!("{tag:08X}"), v);
        self
    }

    /// A string attribute with several values (ModalitiesInStudy).
    pub fn texts(mut self, tag: u32, vr: &str, values: &[String]) -> DataSet {
        let v = if values.is_empty() {
            json!({ "vr": vr })
        } else {
            json!({ "vr": vr, "Value": values })
        };
        self.0.insert(format!("{tag:08X}"), v);
        self
    }

    /// A PN attribute (`Alphabetic` component group).
    pub fn person_name(mut self, tag: u32, value: &str) -> DataSet {
        let v = if value.is_empty() {
            json!({ "vr": "PN" })
        } else {
            json!({ "vr": "PN", "Value": [{ "Alphabetic": value }] })
        };
        self.0.insert(format!("{tag:08X}"), v);
        self
    }

    /// An integer attribute (IS, US, UL); None: present without a value.
    pub fn int(mut self, tag: u32, vr: &str, value: Option<i64>) -> DataSet {
        let v = match value {
            Some(n) => json!({ "vr": vr, "Value": [n] }),
            None => json!({ "vr": vr }),
        };
        self.0.insert(format!("{tag:08X}"), v);
        self
    }

    /// A sequence of data sets; written only when `items` is not empty.
    pub fn sequence(mut self, tag: u32, items: Vec<DataSet>) -> DataSet {
        if !items.is_empty() {
            let items: Vec<Value> = items.into_iter().map(DataSet::into_value).collect();
            self.0
                .insert(format!("{tag:08X}"), json!({ "vr": "SQ", "Value": items }));
        }
        self
    }

    /// The JSON object.
    pub fn into_value(self) -> Value {
        Value::Object(self.0)
    }
}

/// Tags of the attributes answered with.
pub mod tags {
    /// SpecificCharacterSet.
    pub const SPECIFIC_CHARACTER_SET: u32 = 0x0008_0005;
    /// SOPClassUID.
    pub const SOP_CLASS_UID: u32 = 0x0008_0016;
    /// SOPInstanceUID.
    pub const SOP_INSTANCE_UID: u32 = 0x0008_0018;
    /// StudyDate.
    pub const STUDY_DATE: u32 = 0x0008_0020;
    /// AccessionNumber.
    pub const ACCESSION_NUMBER: u32 = 0x0008_0050;
    /// Modality.
    pub const MODALITY: u32 = 0x0008_0060;
    /// ModalitiesInStudy.
    pub const MODALITIES_IN_STUDY: u32 = 0x0008_0061;
    /// RetrieveURL.
    pub const RETRIEVE_URL: u32 = 0x0008_1190;
    /// StudyDescription.
    pub const STUDY_DESCRIPTION: u32 = 0x0008_1030;
    /// SeriesDescription.
    pub const SERIES_DESCRIPTION: u32 = 0x0008_103E;
    /// ReferencedSOPClassUID.
    pub const REFERENCED_SOP_CLASS_UID: u32 = 0x0008_1150;
    /// ReferencedSOPInstanceUID.
    pub const REFERENCED_SOP_INSTANCE_UID: u32 = 0x0008_1155;
    /// FailureReason.
    pub const FAILURE_REASON: u32 = 0x0008_1197;
    /// FailedSOPSequence.
    pub const FAILED_SOP_SEQUENCE: u32 = 0x0008_1198;
    /// ReferencedSOPSequence.
    pub const REFERENCED_SOP_SEQUENCE: u32 = 0x0008_1199;
    /// PatientName.
    pub const PATIENT_NAME: u32 = 0x0010_0010;
    /// PatientID.
    pub const PATIENT_ID: u32 = 0x0010_0020;
    /// IssuerOfPatientID.
    pub const ISSUER_OF_PATIENT_ID: u32 = 0x0010_0021;
    /// PatientBirthDate.
    pub const PATIENT_BIRTH_DATE: u32 = 0x0010_0030;
    /// PatientSex.
    pub const PATIENT_SEX: u32 = 0x0010_0040;
    /// StudyInstanceUID.
    pub const STUDY_INSTANCE_UID: u32 = 0x0020_000D;
    /// SeriesInstanceUID.
    pub const SERIES_INSTANCE_UID: u32 = 0x0020_000E;
    /// SeriesNumber.
    pub const SERIES_NUMBER: u32 = 0x0020_0011;
    /// InstanceNumber.
    pub const INSTANCE_NUMBER: u32 = 0x0020_0013;
    /// NumberOfStudyRelatedSeries.
    pub const NUMBER_OF_STUDY_RELATED_SERIES: u32 = 0x0020_1206;
    /// NumberOfStudyRelatedInstances.
    pub const NUMBER_OF_STUDY_RELATED_INSTANCES: u32 = 0x0020_1208;
    /// NumberOfSeriesRelatedInstances.
    pub const NUMBER_OF_SERIES_RELATED_INSTANCES: u32 = 0x0020_1209;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_dicom_json() {
        let v = DataSet::new()
            .text(tags::STUDY_INSTANCE_UID, "UI", "1.2.3")
            .text(tags::ACCESSION_NUMBER, "SH", "")
            .person_name(tags::PATIENT_NAME, "Doe^Jane")
            .int(tags::SERIES_NUMBER, "IS", Some(4))
            .sequence(tags::FAILED_SOP_SEQUENCE, vec![])
            .into_value();
        assert_eq!(
            v,
            json!({
                "0020000D": {"vr": "UI", "Value": ["1.2.3"]},
                "00080050": {"vr": "SH"},
                "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},
                "00200011": {"vr": "IS", "Value": [4]},
            })
        );
    }
}
