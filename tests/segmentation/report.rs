//! The course report: `rtnode process` over a synthetic course makes
//! report.html, report.pdf (PDF/A-2b) and report.dcm; page 1 of the PDF
//! holds the summary a physicist checks first and the appendix every metric
//! it lists, rounded by unit (pdftotext), with only the constrained or
//! `report.v_gy` VxGy metrics; page 1 renders non-blank (pdftoppm); the
//! Encapsulated PDF reads back with pydicom and passes dciodvfy; patient
//! names in ISO_IR 100, ISO_IR 126, ISO_IR 192 (Czech, Korean), ISO 2022 IR 87 (Japanese)
//! and GB18030 print every component group; a missing font fails the
//! report naming the file; a course without an RTSTRUCT still gets a
//! report; and through a running node the report reaches a dcmtk storescp
//! by the export queue, while a TPS that takes only RTSTRUCTs gets no report
//! and no dead letter.

use crate::common;

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use rtnode::synth::rt::{write_rt_objects, SynthRt};
use rtnode::synth::{write_ct_series, SynthOptions, SynthSeries};

fn synth_course(dir: &Path, slices: u32, rows: u16, rt: bool) -> (SynthSeries, Option<SynthRt>) {
    let opts = SynthOptions {
        slices,
        ..SynthOptions::default().with_rows(rows)
    };
    let series = write_ct_series(dir, &opts).unwrap();
    let rt = rt.then(|| write_rt_objects(dir, &series, &opts).unwrap());
    (series, rt)
}

/// Runs `rtnode process` and returns the course's v1 folder.
fn process(input: &Path, out: &Path) -> PathBuf {
    process_with(input, out, None)
}

fn process_with(input: &Path, out: &Path, config: Option<&Path>) -> PathBuf {
    let v1 = process_all(input, out, config);
    assert_eq!(v1.len(), 1, "{v1:?}");
    v1[0].clone()
}

/// Runs `rtnode process` and returns every course's v1 folder.
fn process_all(input: &Path, out: &Path, config: Option<&Path>) -> Vec<PathBuf> {
    let mut cmd = Command::new(BIN);
    cmd.arg("process").arg(input).arg("--out").arg(out);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    let o = cmd.output().unwrap();
    assert!(
        o.status.success(),
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let courses: Vec<PathBuf> = std::fs::read_dir(out.join("courses"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    courses.iter().map(|c| c.join("v1")).collect()
}

fn pdftotext(pdf: &Path) -> String {
    pdftotext_pages(pdf, None)
}

/// The text of the PDF, or of one page of it.
fn pdftotext_pages(pdf: &Path, page: Option<u32>) -> String {
    let mut cmd = Command::new("pdftotext");
    if let Some(p) = page {
        cmd.args(["-f", &p.to_string(), "-l", &p.to_string()]);
    }
    let o = cmd
        .arg(pdf)
        .arg("-")
        .output()
        .expect("pdftotext (poppler-utils, tests/setup.sh installs it)");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "pdftotext failed: {stderr}");
    // poppler reports a broken xref or content stream here.
    assert!(stderr.trim().is_empty(), "pdftotext complained: {stderr}");
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Share of the pixels of page `page`, rendered by pdftoppm in grey, that
/// are not white.
fn inked_fraction(pdf: &Path, page: u32) -> f64 {
    let dir = tempfile::tempdir().unwrap();
    let prefix = dir.path().join("page");
    let o = Command::new("pdftoppm")
        .args(["-r", "40", "-gray", "-singlefile"])
        .args(["-f", &page.to_string(), "-l", &page.to_string()])
        .arg(pdf)
        .arg(&prefix)
        .output()
        .expect("pdftoppm (poppler-utils)");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let pgm = std::fs::read(prefix.with_extension("pgm")).unwrap();
    // P5 <w> <h> <max> then one byte a pixel.
    let mut fields = Vec::new();
    let mut i = 0;
    while fields.len() < 4 {
        while pgm[i].is_ascii_whitespace() {
            i += 1;
        }
        let start = i;
        while !pgm[i].is_ascii_whitespace() {
            i += 1;
        }
        fields.push(String::from_utf8_lossy(&pgm[start..i]).into_owned());
    }
    assert_eq!(fields[0], "P5");
    let (w, h): (usize, usize) = (fields[1].parse().unwrap(), fields[2].parse().unwrap());
    let pixels = &pgm[i + 1..i + 1 + w * h];
    pixels.iter().filter(|&&p| p < 200).count() as f64 / (w * h) as f64
}

/// A metric value as the report prints it: Gy and cc to 2 decimals, % to
/// 1, unitless (HI) to 3.
fn rounded(v: &str, unit: &str) -> String {
    let x: f64 = v.parse().unwrap();
    let s = match unit {
        "%" => format!("{x:.1}"),
        "" => format!("{x:.3}"),
        _ => format!("{x:.2}"),
    };
    if s.trim_start_matches('-')
        .chars()
        .all(|c| c == '0' || c == '.')
    {
        s.trim_start_matches('-').to_string()
    } else {
        s
    }
}

fn dciodvfy_errors(path: &Path) -> (Vec<String>, String) {
    let o = Command::new("dciodvfy").arg(path).output().unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let errors = all
        .lines()
        .filter(|l| l.starts_with("Error") || l.contains("E:"))
        .map(str::to_string)
        .collect();
    (errors, all)
}

/// What pydicom reads from an Encapsulated PDF.
fn pydicom_read(path: &Path) -> serde_json::Value {
    let script = r#"
import json, sys, pydicom
ds = pydicom.dcmread(sys.argv[1])
doc = ds.EncapsulatedDocument
n = int(ds.EncapsulatedDocumentLength)
open(sys.argv[2], "wb").write(doc[:n])
print(json.dumps({
    "transfer_syntax": str(ds.file_meta.TransferSyntaxUID),
    "sop_class": str(ds.SOPClassUID),
    "media_sop_instance": str(ds.file_meta.MediaStorageSOPInstanceUID),
    "sop_instance": str(ds.SOPInstanceUID),
    "modality": ds.Modality,
    "study": str(ds.StudyInstanceUID),
    "charset": ds.get("SpecificCharacterSet", ""),
    "patient_id": str(ds.PatientID),
    "patient_name": str(ds.PatientName),
    "conversion_type": ds.ConversionType,
    "burned_in": ds.BurnedInAnnotation,
    "mime": ds.MIMETypeOfEncapsulatedDocument,
    "title": ds.DocumentTitle,
    "instance_number": int(ds.InstanceNumber),
    "series_number": int(ds.SeriesNumber),
    "concept": [ds.ConceptNameCodeSequence[0].CodeValue, ds.ConceptNameCodeSequence[0].CodingSchemeDesignator],
    "content_date": ds.ContentDate,
    "acquisition_datetime": ds.AcquisitionDateTime,
    "doc_len": len(doc),
    "declared_len": n,
    "sources": [[str(i.ReferencedSOPClassUID), str(i.ReferencedSOPInstanceUID)] for i in ds.SourceInstanceSequence],
}))
"#;
    let out_pdf = path.with_extension("extracted.pdf");
    let o = Command::new(venv_python())
        .args(["-c", script])
        .arg(path)
        .arg(&out_pdf)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "pydicom: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    serde_json::from_slice(&o.stdout).unwrap()
}

fn sources_of(py: &serde_json::Value, class: &str) -> HashSet<String> {
    py["sources"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s[0] == class)
        .map(|s| s[1].as_str().unwrap().to_string())
        .collect()
}

const CT: &str = "1.2.840.10008.5.1.4.1.1.2";
const RTSTRUCT: &str = "1.2.840.10008.5.1.4.1.1.481.3";
const RTDOSE: &str = "1.2.840.10008.5.1.4.1.1.481.2";
const PDF: &str = "1.2.840.10008.5.1.4.1.1.104.1";

fn manifest(v1: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(v1.join("manifest.json")).unwrap()).unwrap()
}

#[test]
fn a_synthetic_course_gets_html_pdf_and_a_valid_encapsulated_pdf() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let (series, rt) = synth_course(&input, 40, 128, true);
    let rt = rt.unwrap();
    // One constraint on a V metric; report.v_gy adds V5Gy.
    let config = dir.path().join("rtnode.yaml");
    std::fs::write(
        &config,
        "dvh:\n  constraints: [\"Cylinder: V20Gy < 30 %\"]\nreport:\n  v_gy: [5]\n",
    )
    .unwrap();
    let v1 = process_with(&input, &dir.path().join("out"), Some(&config));
    let report = v1.join("report");
    let pdf_path = report.join("report.pdf");

    // Page 1: what a physicist checks first, and nothing else.
    let page1 = pdftotext_pages(&pdf_path, Some(1));
    for expected in [
        "UNAPPROVED — automatically generated",
        "Patient: Phantom Water (ID RTNODE-PHANTOM-001)",
        "Prescription: 50.00 Gy",
        "Dose used:",
        "Why this dose:",
        "Target coverage",
        "D98 (Gy)",
        "V95%Rx (cc)",
        "V95%Rx (%)",
        "HI",
        "Dose constraints",
        "1 constraint result(s): ",
        "Cylinder",
        "V20Gy_pct",
        "QC verdict",
        "Verdict",
        "Auto-segmented structures",
        "External",
        concat!("rtnode ", env!("CARGO_PKG_VERSION")),
        "bin width 0.01 Gy",
        "Reviewed by:",
        "Date:",
    ] {
        assert!(
            page1.contains(expected),
            "{expected} not on page 1:\n{page1}"
        );
    }
    assert!(!page1.contains("Dose-volume histograms"), "{page1}");
    assert!(inked_fraction(&pdf_path, 1) > 0.01, "page 1 is blank");
    assert!(inked_fraction(&pdf_path, 2) > 0.02, "the DVH page is blank");
    let pdf_bytes = std::fs::read(&pdf_path).unwrap();
    assert!(pdf_bytes.starts_with(b"%PDF-1.7"));
    let pdf_text = String::from_utf8_lossy(&pdf_bytes);
    assert!(
        pdf_text.contains("<pdfaid:part>2</pdfaid:part>")
            && pdf_text.contains("<pdfaid:conformance>B</pdfaid:conformance>"),
        "PDF/A-2b identification"
    );

    // Every metric the appendix lists — all but the VxGy ones nobody
    // asked for — is a word of the PDF's text and a cell of the HTML,
    // rounded by its unit.
    let metrics = std::fs::read_to_string(v1.join("dvh/dvh_metrics.csv")).unwrap();
    assert!(!metrics.contains('"'), "synthetic names need no quoting");
    let mut lines = rtnode::csv_format::records(&metrics).unwrap().into_iter();
    let header = lines.next().unwrap();
    let at = |name: &str| header.iter().position(|h| *h == name).unwrap();
    let (mcol, col, ucol) = (at("metric"), at("value"), at("unit"));
    let v_gy = regex::Regex::new(r"^V[0-9.]+Gy(_pct)?$").unwrap();
    let mut values = Vec::new();
    let mut hidden = HashSet::new();
    for f in lines {
        let base = f[mcol].trim_end_matches("_pct");
        if v_gy.is_match(&f[mcol]) && base != "V20Gy" && base != "V5Gy" {
            hidden.insert(f[mcol].to_string());
            continue;
        }
        if !f[col].is_empty() {
            values.push(rounded(&f[col], &f[ucol]));
        }
    }
    assert!(values.len() > 100, "only {} metric values", values.len());
    assert!(hidden.contains("V60Gy_pct"), "{hidden:?}");
    let text = pdftotext(&pdf_path);
    let words: HashSet<&str> = text.split_whitespace().collect();
    let absent: Vec<&String> = values
        .iter()
        .filter(|v| !words.contains(v.as_str()))
        .collect();
    assert!(absent.is_empty(), "not in the PDF text: {absent:?}");
    let appendix = text
        .split("Appendix: DVH metrics")
        .nth(1)
        .and_then(|t| t.split("Quality checks").next())
        .and_then(|t| t.split("Radiomics").next())
        .unwrap_or_default();
    assert!(!appendix.is_empty(), "no appendix: {text}");
    for w in text.split_whitespace() {
        assert!(!hidden.contains(w), "{w} is listed");
    }
    for w in appendix.split_whitespace() {
        // No six-significant-digit values any more.
        let decimals = w.split_once('.').map(|(_, d)| d.len()).unwrap_or(0);
        assert!(
            decimals <= 3 || w.parse::<f64>().is_err(),
            "{w} printed with {decimals} decimals"
        );
    }
    for name in [
        "V5Gy",
        "V5Gy_pct",
        "V20Gy",
        "PTV",
        "BODY",
        "Dose-volume histograms",
        "CT with contours",
        "Appendix: DVH metrics",
        "Quality checks",
        "Stages",
    ] {
        assert!(text.contains(name), "{name} missing from the PDF text");
    }
    let html = std::fs::read_to_string(report.join("report.html")).unwrap();
    for v in &values {
        assert!(
            html.contains(&format!("<td>{v}</td>")),
            "{v} not in the HTML"
        );
    }
    assert!(html.contains("<svg") && html.contains("data:image/png;base64,iVBORw0KGgo"));
    assert!(
        html.matches("<path d=").count() > 10,
        "DVH curves and contours"
    );
    assert!(!html.contains("src=\"http") && !html.contains("href=\"http"));

    // The Encapsulated PDF.
    let dcm = report.join("report.dcm");
    let (errors, all) = dciodvfy_errors(&dcm);
    assert!(errors.is_empty(), "dciodvfy errors:\n{all}");
    assert!(all.contains("EncapsulatedPDF"), "{all}");
    let py = pydicom_read(&dcm);
    assert_eq!(py["sop_class"], PDF);
    assert_eq!(py["transfer_syntax"], "1.2.840.10008.1.2.1");
    assert_eq!(py["media_sop_instance"], py["sop_instance"]);
    assert_eq!(py["modality"], "DOC");
    assert_eq!(py["study"], series.study_instance_uid.as_str());
    assert_eq!(py["charset"], "ISO_IR 192");
    assert_eq!(py["patient_id"], "RTNODE-PHANTOM-001");
    assert_eq!(py["patient_name"], "Phantom^Water");
    assert_eq!(py["conversion_type"], "WSD");
    assert_eq!(py["burned_in"], "YES");
    assert_eq!(py["mime"], "application/pdf");
    assert_eq!(py["instance_number"], 1);
    assert_eq!(py["concept"][1], "LN");
    assert!(py["title"].as_str().unwrap().starts_with("Course report"));
    assert_eq!(py["content_date"].as_str().unwrap().len(), 8);
    assert_eq!(py["doc_len"].as_u64().unwrap() % 2, 0, "even length");
    let pdf = std::fs::read(report.join("report.pdf")).unwrap();
    assert_eq!(py["declared_len"], pdf.len());
    assert_eq!(
        std::fs::read(dcm.with_extension("extracted.pdf")).unwrap(),
        pdf,
        "the encapsulated document is report.pdf"
    );
    let ct: HashSet<String> = series.sop_instance_uids.iter().cloned().collect();
    assert_eq!(sources_of(&py, CT), ct);
    let auto = manifest(&v1)["stages"]["segmentation"]["summary"]["rtstruct_sop_instance_uid"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        sources_of(&py, RTSTRUCT),
        HashSet::from([rt.rtstruct_uid.clone(), auto])
    );
    assert_eq!(
        sources_of(&py, RTDOSE),
        HashSet::from([rt.rtdose_uid.clone()])
    );
    // The report is a created instance: it never re-opens the course.
    assert_eq!(
        manifest(&v1)["stages"]["report"]["summary"]["created_instances"][0],
        py["sop_instance"]
    );
}

#[test]
fn a_course_without_rtstruct_still_gets_a_report() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let (series, _) = synth_course(&input, 16, 96, false);
    let v1 = process(&input, &dir.path().join("out"));
    let m = manifest(&v1);
    assert_eq!(m["stages"]["dvh"]["state"], "skipped");
    assert_eq!(m["stages"]["report"]["state"], "done", "{m}");
    let text = pdftotext(&v1.join("report/report.pdf"));
    assert!(text.contains("No DVH for this course."), "{text}");
    assert!(
        text.contains("External (auto)"),
        "auto contours drawn: {text}"
    );
    assert!(
        text.contains("no RTSTRUCT"),
        "the stage table says why: {text}"
    );
    let dcm = v1.join("report/report.dcm");
    let (errors, all) = dciodvfy_errors(&dcm);
    assert!(errors.is_empty(), "dciodvfy errors:\n{all}");
    let py = pydicom_read(&dcm);
    assert_eq!(py["study"], series.study_instance_uid.as_str());
    assert_eq!(sources_of(&py, CT).len(), 16);
    assert_eq!(sources_of(&py, RTSTRUCT).len(), 1, "the auto RTSTRUCT only");
    assert!(sources_of(&py, RTDOSE).is_empty());
}

struct StoreScp {
    child: Child,
    dir: PathBuf,
}

impl StoreScp {
    fn start(ae: &str, port: u16, dir: &Path) -> StoreScp {
        std::fs::create_dir_all(dir).unwrap();
        let child = Command::new(dcmtk("storescp"))
            .env("TCP_NODELAY", "1")
            .args(["-aet", ae, "-od"])
            .arg(dir)
            .arg(port.to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port);
        StoreScp {
            child,
            dir: dir.to_path_buf(),
        }
    }

    fn files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(&self.dir)
            .map(|d| d.map(|e| e.unwrap().path()).collect())
            .unwrap_or_default()
    }
}

impl Drop for StoreScp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn the_report_reaches_a_storescp_and_skips_a_tps_that_refuses_pdf() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    let (series, rt) = synth_course(&input, 24, 96, true);
    let rt = rt.unwrap();
    let (pacs_port, tps_port) = (free_port(), free_port());
    let pacs = StoreScp::start("PACS_OUT", pacs_port, &dir.path().join("pacs"));
    let tps = StoreScp::start("TPS_OUT", tps_port, &dir.path().join("tps"));
    let opts = ServerOptions {
        extra_yaml: "pipeline:\n  stable_age_s: 1\n  trigger: full\n\
                     export:\n  retry_base_s: 1\n  retry_max_s: 2\n"
            .into(),
        ..ServerOptions::default()
    };
    let cfg = write_config(dir.path(), &opts);
    std::fs::write(
        dir.path().join("peers.yaml"),
        format!(
            "peers:\n- {{ae_title: RTNODE_SCU, host: 127.0.0.1, port: 104}}\n\
             - {{ae_title: PACS_OUT, host: 127.0.0.1, port: {pacs_port}, may_store: false, receives_results: true}}\n\
             - {{ae_title: TPS_OUT, host: 127.0.0.1, port: {tps_port}, may_store: false, receives_results: true, sop_classes: [RTStructureSetStorage]}}\n"
        ),
    )
    .unwrap();
    let s = Server::start_with_config(dir.path(), &cfg);
    let mut files = series.files.clone();
    files.extend([rt.rtstruct.clone(), rt.rtplan.clone(), rt.rtdose.clone()]);
    send_ok(s.port, &files);

    // RTSTRUCT to both, the report to the PACS only: three sends.
    let deadline = Instant::now() + Duration::from_secs(120);
    let outbound = loop {
        let o = s.status_json()["outbound"].clone();
        if o["sent"] == 3 && o["pending"] == 0 {
            break o;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {o}\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(outbound["dead"], 0, "{outbound}");
    assert!(s
        .log_text()
        .contains("destination does not take this SOP class"));

    let courses = s.data_dir.join("courses");
    let course = std::fs::read_dir(&courses)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let m = manifest(&course.join("v1"));
    let report_uid = m["stages"]["report"]["summary"]["sop_instance_uid"]
        .as_str()
        .unwrap()
        .to_string();
    let results = &m["stages"]["export"]["summary"]["results"];
    assert_eq!(results.as_array().map(Vec::len), Some(2), "{m}");

    // storescp names files by SOP Instance UID; give it a moment to close
    // the last one.
    std::thread::sleep(Duration::from_millis(500));
    let pacs_files = pacs.files();
    assert_eq!(pacs_files.len(), 2, "{pacs_files:?}");
    let received = pacs_files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(&report_uid))
        .unwrap_or_else(|| panic!("no {report_uid} among {pacs_files:?}"));
    let pdf = std::fs::read(course.join("v1/report/report.pdf")).unwrap();
    let bytes = std::fs::read(received).unwrap();
    assert!(
        bytes.windows(pdf.len()).any(|w| w == pdf.as_slice()),
        "the received object carries report.pdf"
    );
    let tps_files = tps.files();
    assert_eq!(tps_files.len(), 1, "{tps_files:?}");
    assert!(!tps_files[0].to_string_lossy().ends_with(&report_uid));

    // A revised plan RTSTRUCT makes v2: a new report goes out, the auto
    // RTSTRUCT (reused, the same instance) is not sent again.
    let mut rs = dicom_object::open_file(&rt.rtstruct).unwrap();
    rs.put(dicom_core::DataElement::new(
        dicom_dictionary_std::tags::STRUCTURE_SET_LABEL,
        dicom_core::VR::SH,
        dicom_core::PrimitiveValue::from("SYNTH_REV2"),
    ));
    let revised = dir.path().join("RS_revised.dcm");
    rs.write_to_file(&revised).unwrap();
    send_ok(s.port, &[revised]);
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let o = s.status_json()["outbound"].clone();
        let v2 = course.join("v2/export/queued.json").exists();
        if v2 && o["sent"] == 4 && o["pending"] == 0 {
            assert_eq!(o["dead"], 0, "{o}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "timed out: {o}\n{}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let m2 = manifest(&course.join("v2"));
    let results = m2["stages"]["export"]["summary"]["results"]
        .as_array()
        .unwrap()
        .clone();
    let seg = results
        .iter()
        .find(|r| r["stage"] == "segmentation")
        .unwrap();
    assert_eq!(seg["queued"].as_array().map(Vec::len), Some(0), "{seg}");
    assert_eq!(
        seg["already_there"].as_array().map(Vec::len),
        Some(2),
        "{seg}"
    );
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(s.status_json()["outbound"]["sent"], 4);
    assert_eq!(pacs.files().len(), 3, "two reports and one RTSTRUCT");
    assert_eq!(tps.files().len(), 1);
    s.stop();
}

#[test]
fn the_demo_says_where_the_report_is_and_the_tps_receives_it() {
    let o = Command::new(BIN)
        .args(["demo", "--slices", "16", "--rows", "96", "--keep"])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(
        o.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with("report:"))
        .unwrap_or_else(|| panic!("no report line: {stdout}"));
    let pdf = PathBuf::from(
        line.trim_start()
            .trim_start_matches("report:")
            .split_whitespace()
            .next()
            .unwrap(),
    );
    assert!(pdf.ends_with("report/report.pdf"), "{line}");
    assert!(std::fs::read(&pdf).unwrap().starts_with(b"%PDF-1.7"));
    // The auto RTSTRUCT and the report.
    assert!(
        stdout.contains("2 sent, 0 dead; the TPS holds 2 instance(s)"),
        "{stdout}"
    );
    let kept = stdout
        .lines()
        .find_map(|l| l.strip_prefix("kept "))
        .unwrap();
    std::fs::remove_dir_all(kept).unwrap();
}

#[test]
fn patient_names_print_in_every_character_set_rtnode_decodes() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    // (patient ID, SpecificCharacterSet, PatientName, words pdftotext must find)
    let patients: [(&str, &str, &str, &[&str]); 6] = [
        (
            "RT-LATIN1",
            "ISO_IR 100",
            "Müller^Jürgen",
            &["Müller", "Jürgen"],
        ),
        (
            "RT-GREEK",
            "ISO_IR 126",
            "Διονυσιος^Νικος",
            &["Διονυσιος", "Νικος"],
        ),
        (
            "RT-CZECH",
            "ISO_IR 192",
            "Dvořák^Antonín",
            &["Dvořák", "Antonín"],
        ),
        // The ISO 2022 form Japanese systems send: JIS X 0208 behind
        // escape sequences (PS3.5 Annex H).
        (
            "RT-JAPANESE",
            "\\ISO 2022 IR 87",
            "Yamada^Tarou=山田^太郎=やまだ^たろう",
            &["Yamada", "Tarou", "山田", "太郎", "やまだ", "たろう"],
        ),
        (
            "RT-KOREAN",
            "ISO_IR 192",
            "Hong^Gildong=洪^吉洞=홍^길동",
            &["Hong", "Gildong", "洪", "吉洞", "홍", "길동"],
        ),
        (
            "RT-CHINESE",
            "GB18030",
            "Wang^XiaoDong=王^小東",
            &["Wang", "XiaoDong", "王", "小東"],
        ),
    ];
    for (id, charset, name, _) in &patients {
        let series_dir = input.join(id);
        let opts = SynthOptions {
            slices: 12,
            patient_id: id.to_string(),
            ..SynthOptions::default().with_rows(64)
        };
        write_ct_series(&series_dir, &opts).unwrap();
        // Re-encode the name in the patient's character set (pydicom).
        let script = r#"
import pathlib, sys, pydicom
charset = sys.argv[2].split("\\")
for p in pathlib.Path(sys.argv[1]).rglob("*"):
    if not p.is_file():
        continue
    ds = pydicom.dcmread(p)
    ds.SpecificCharacterSet = charset if len(charset) > 1 else charset[0]
    ds.PatientName = sys.argv[3]
    ds.save_as(p)
"#;
        let o = Command::new(venv_python())
            .args(["-c", script])
            .arg(&series_dir)
            .arg(charset)
            .arg(name)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    }
    let v1s = process_all(&input, &dir.path().join("out"), None);
    assert_eq!(v1s.len(), patients.len(), "{v1s:?}");
    for (id, charset, _, words) in &patients {
        let v1 = v1s
            .iter()
            .find(|p| {
                p.parent()
                    .and_then(|c| c.file_name())
                    .is_some_and(|c| c.to_string_lossy().starts_with(&format!("{id}-")))
            })
            .unwrap_or_else(|| panic!("no course of {id}: {v1s:?}"));
        let page1 = pdftotext_pages(&v1.join("report/report.pdf"), Some(1));
        let line = page1
            .lines()
            .find(|l| l.starts_with("Patient:"))
            .unwrap_or_else(|| panic!("{charset}: no patient line:\n{page1}"));
        for w in *words {
            assert!(
                line.split_whitespace().any(|x| x == *w),
                "{charset}: {w} not in {line:?}"
            );
        }
        assert!(!line.contains('?'), "{charset}: {line}");
        let (errors, all) = dciodvfy_errors(&v1.join("report/report.dcm"));
        assert!(errors.is_empty(), "{charset}: dciodvfy errors:\n{all}");
    }
}

#[test]
fn a_missing_font_fails_the_report_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in");
    synth_course(&input, 8, 64, false);
    let config = dir.path().join("rtnode.yaml");
    std::fs::write(
        &config,
        "pipeline:\n  max_attempts: 1\nreport:\n  fonts: [/nonexistent/NotoSans-Regular.ttf]\n",
    )
    .unwrap();
    let out = dir.path().join("out");
    let o = Command::new(BIN)
        .arg("process")
        .arg(&input)
        .arg("--out")
        .arg(&out)
        .arg("--config")
        .arg(&config)
        .output()
        .unwrap();
    let course = std::fs::read_dir(out.join("courses"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let m = manifest(&course.join("v1"));
    let report = &m["stages"]["report"];
    assert_eq!(report["state"], "failed", "{m}\n{o:?}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("/nonexistent/NotoSans-Regular.ttf") && error.contains("missing"),
        "{error}"
    );
    assert!(!course.join("v1/report/report.pdf").exists());
}
