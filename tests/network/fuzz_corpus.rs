//! Replays the committed fuzz corpora (tests/fuzz/corpus/) through the same
//! properties the fuzz targets check, so every input the fuzzer found
//! interesting, crashes included once fixed, stays a regression test on a
//! stable toolchain.

#[path = "../fuzz/properties.rs"]
mod properties;

use std::path::{Path, PathBuf};

use dicom_ul::pdu::{AssociationRQ, Pdu, PresentationContextProposed, UserVariableItem};
use rtnode::dimse;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fuzz/corpus")
        .join(target)
}

fn corpus(target: &str) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = corpus_dir(target);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap();
            (p, bytes)
        })
        .collect()
}

fn replay(target: &str, property: fn(&[u8]) -> Result<(), String>) -> usize {
    let inputs = corpus(target);
    // An emptied or misplaced corpus must fail, not pass on nothing.
    assert!(
        inputs.len() >= 5,
        "corpus {} has only {} inputs",
        corpus_dir(target).display(),
        inputs.len()
    );
    let failures: Vec<String> = inputs
        .iter()
        .filter_map(|(path, bytes)| {
            property(bytes)
                .err()
                .map(|e| format!("{}: {e}", path.display()))
        })
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    inputs.len()
}

#[test]
fn dimse_command_corpus_round_trips() {
    replay("dimse_command", properties::dimse_command);
    // The corpus must still reach the accepting path, or the round trip
    // is never exercised.
    let decoded = corpus("dimse_command")
        .iter()
        .filter(|(_, b)| dimse::decode_command(b).is_ok())
        .count();
    assert!(decoded > 0, "no corpus input decodes as a command");
}

#[test]
fn pdv_stream_corpus_is_read_safely() {
    replay("pdv_stream", properties::pdv_stream);
}

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";

fn seed_commands() -> Vec<(&'static str, Vec<u8>)> {
    let mut with_move = dimse::c_store_rq(3, CT, "1.2.826.0.1.3680043.2.1125.1.77");
    with_move.move_originator_ae = Some("MOVESCU".into());
    with_move.move_originator_message_id = Some(41);
    let mut with_unknown = dimse::encode_command(&dimse::c_echo_rq(5));
    // (0000,0600) Move Destination: legal in a command, skipped by us.
    with_unknown.extend_from_slice(&[0, 0, 0, 6, 8, 0, 0, 0]);
    with_unknown.extend_from_slice(b"DEST_AE ");
    vec![
        ("c-echo-rq", dimse::encode_command(&dimse::c_echo_rq(1))),
        (
            "c-echo-rsp",
            dimse::encode_command(&dimse::c_echo_rsp(1, None)),
        ),
        (
            "c-store-rq",
            dimse::encode_command(&dimse::c_store_rq(7, CT, "1.2.3.4.5.6.7")),
        ),
        (
            "c-store-rsp-error",
            dimse::encode_command(&dimse::c_store_rsp(
                7,
                Some(CT),
                Some("1.2.3.4.5.6.7"),
                rtnode::dicom::status::DimseStatus::CANNOT_UNDERSTAND,
                Some("data set truncated at byte 1234"),
            )),
        ),
        (
            "c-store-rsp-success",
            dimse::encode_command(&dimse::c_store_rsp(
                7,
                Some(CT),
                Some("1.2.3.4.5.6.7"),
                rtnode::dicom::status::DimseStatus::SUCCESS,
                None,
            )),
        ),
        (
            "c-store-rq-move-originator",
            dimse::encode_command(&with_move),
        ),
        ("c-echo-rq-move-destination", with_unknown),
    ]
}

fn pdata(context: u8, control: u8, data: &[u8]) -> Vec<u8> {
    let mut out = vec![0x04, 0];
    out.extend_from_slice(&((data.len() + 6) as u32).to_be_bytes());
    out.extend_from_slice(&((data.len() + 2) as u32).to_be_bytes());
    out.push(context);
    out.push(control);
    out.extend_from_slice(data);
    out
}

fn seed_streams() -> Vec<(&'static str, Vec<u8>)> {
    let rq = AssociationRQ {
        protocol_version: 1,
        calling_ae_title: "STORESCU".into(),
        called_ae_title: "RTNODE".into(),
        application_context_name: "1.2.840.10008.3.1.1.1".into(),
        presentation_contexts: vec![PresentationContextProposed {
            id: 1,
            abstract_syntax: CT.into(),
            transfer_syntaxes: vec!["1.2.840.10008.1.2.1".into(), "1.2.840.10008.1.2".into()],
        }],
        user_variables: vec![
            UserVariableItem::MaxLength(16_384),
            UserVariableItem::ImplementationClassUID("1.2.3.4".into()),
            UserVariableItem::ImplementationVersionName("SEED".into()),
        ],
    };
    let mut rq_bytes = Vec::new();
    dicom_ul::pdu::write_pdu(&mut rq_bytes, &Pdu::AssociationRQ(rq)).unwrap();
    let cmd = dimse::encode_command(&dimse::c_store_rq(1, CT, "1.2.3.4"));
    let mut store = pdata(1, 0x01, &cmd[..10]);
    store.extend(pdata(1, 0x03, &cmd[10..]));
    store.extend(pdata(
        1,
        0x00,
        &[0x08, 0, 0x16, 0, b'U', b'I', 2, 0, b'1', 0],
    ));
    store.extend(pdata(1, 0x02, &[0; 16]));
    let release = vec![0x05, 0, 0, 0, 0, 4, 0, 0, 0, 0];
    let abort = vec![0x07, 0, 0, 0, 0, 4, 0, 0, 2, 1];
    let mut session = rq_bytes.clone();
    session.extend(&store);
    session.extend(&release);
    vec![
        ("associate-rq", rq_bytes),
        ("c-store-pdata", store),
        ("release-rq", release),
        ("abort", abort),
        ("session", session),
    ]
}

/// Regenerates the seed inputs; run once before fuzzing a fresh corpus:
/// `cargo test --test network -- --ignored write_seed_corpus`.
#[test]
#[ignore = "writes into the source tree"]
fn write_seed_corpus() {
    for (target, seeds) in [
        ("dimse_command", seed_commands()),
        ("pdv_stream", seed_streams()),
    ] {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).unwrap();
        for (name, bytes) in seeds {
            std::fs::write(dir.join(format!("seed-{name}")), bytes).unwrap();
        }
    }
}

#[test]
fn seeds_hold_the_properties() {
    for (name, bytes) in seed_commands() {
        assert!(
            dimse::decode_command(&bytes).is_ok(),
            "seed {name} does not decode"
        );
        properties::dimse_command(&bytes).unwrap_or_else(|e| panic!("seed {name}: {e}"));
    }
    for (name, bytes) in seed_streams() {
        properties::pdv_stream(&bytes).unwrap_or_else(|e| panic!("seed {name}: {e}"));
    }
}
