//! Real RT objects (pydicom's test files, see fixtures/pydicom/LICENSE_pydicom):
//! implicit and big-endian RTDOSE, an RLE RTDOSE with UN elements, a plan
//! with a predecessor, a structure set without preamble or meta group, and
//! a truncated plan that must be refused while the rest is stored.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::*;
use rtnode::store::record::Reference;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/pydicom")
}

#[test]
fn rt_objects_are_stored_and_their_references_indexed() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &ServerOptions::default());
    let out = Command::new(BIN)
        .args(["send", "--to", &format!("RTNODE@127.0.0.1:{}", s.port)])
        .arg(fixtures())
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        !out.status.success(),
        "the truncated plan must fail: {report}"
    );
    let failed: Vec<&str> = report
        .lines()
        .filter(|l| !l.contains("0000 Success") && l.contains(".dcm"))
        .collect();
    assert_eq!(failed.len(), 1, "{report}");
    assert!(failed[0].contains("rtplan_truncated.dcm"), "{report}");
    let data_dir = s.data_dir.clone();
    s.stop();

    let index = rtnode::store::Index::open(&data_dir.join("index.redb")).unwrap();
    let dose = index
        .get("1.9.999.999.99.9.9999.9999.20030818153516")
        .unwrap()
        .unwrap();
    assert_eq!(dose.modality, "RTDOSE");
    assert_eq!(
        dose.references,
        vec![Reference::Plan {
            uid: "1.2.123.456.78.9.0123.4567.89012345678901".into(),
            relationship: String::new()
        }]
    );
    let rt = dose.rt.unwrap();
    assert_eq!(
        (
            rt.dose_units.as_str(),
            rt.dose_type.as_str(),
            rt.dose_summation_type.as_str()
        ),
        ("RELATIVE", "PHYSICAL", "BEAM")
    );

    let plan = index
        .get("1.2.777.777.77.7.7777.7777.20030903150023")
        .unwrap()
        .unwrap();
    assert_eq!(
        plan.references,
        vec![
            Reference::StructureSet("1.2.333.444.55.6.7777.88888".into()),
            Reference::Plan {
                uid: "1.9.999.999.99.9.9999.9999.20030903145128".into(),
                relationship: "PREDECESSOR".into()
            }
        ]
    );
    assert_eq!(plan.rt.unwrap().approval_status, "UNAPPROVED");

    let ss = index
        .get("1.2.826.0.1.3680043.8.498.2010020400001")
        .unwrap()
        .unwrap();
    assert!(ss.references.contains(&Reference::ImageSeries(
        "1.2.826.0.1.3680043.8.498.2010020400001.2.1.1".into()
    )));
    assert_eq!(
        ss.frame_of_reference_uid,
        "1.2.826.0.1.3680043.8.498.2010020400001.2"
    );

    let ct = index
        .get("1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322")
        .unwrap()
        .unwrap();
    assert_eq!(ct.modality, "CT");
    assert!(ct.image_position_patient.is_some() && ct.image_orientation_patient.is_some());
}
