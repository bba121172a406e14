//! The config's loaders and checks, on files held in memory and on the
//! shipped `conf/rtnode.yaml` and `ae-titles.yaml`.

use std::net::SocketAddr;

use super::locator::{is_key, Locator};
use super::validate::check_config;
use super::*;
use crate::peers::{check_ae_title, check_host};
use crate::pipeline::ExecutorKind;
use crate::report::settings::ReportSection;
use crate::scp::NetworkSection;

fn cfg_path() -> PathBuf {
    PathBuf::from("/etc/rtnode/rtnode.yaml")
}
fn peers_path() -> PathBuf {
    PathBuf::from("/etc/rtnode/ae-titles.yaml")
}

/// (line, message) pairs, for compact assertions.
fn lines_of(e: &ConfigErrors) -> Vec<(Option<usize>, String)> {
    e.0.iter().map(|e| (e.line, e.message.clone())).collect()
}

#[test]
fn defaults_match_documentation() {
    let c = Config::default();
    assert_eq!(c.node.ae_title, "RTNODE");
    assert_eq!(c.node.bind, "0.0.0.0");
    assert_eq!(c.node.port, 11112);
    assert_eq!(c.node.data_dir, PathBuf::from("/var/lib/rtnode"));
    assert_eq!(c.node.peers_file, PathBuf::from("../ae-titles.yaml"));
    assert_eq!(c.network.max_associations, 16);
    assert_eq!(c.network.max_pdu_length, 262_144);
    assert_eq!(c.network.max_pdu_hard_limit, 16_777_216);
    assert!(c.network.require_known_callers);
    assert!(!c.network.check_peer_address);
    assert_eq!(c.network.idle_timeout_s, 120);
    assert!(c.network.admin_socket);
    assert!(c.storage.fsync);
    assert_eq!(c.storage.min_free_bytes, 1_073_741_824);
    assert_eq!(c.logging.log_format(), Some(LogFormat::Text));
    assert_eq!(c.logging.level, "info");
    assert_eq!(c.source, None);
    assert_eq!(
        c.node.listen_addr(),
        Ok("0.0.0.0:11112".parse::<SocketAddr>().unwrap())
    );
    assert_eq!(
        c.node.admin_socket_path(),
        PathBuf::from("/var/lib/rtnode/admin.sock")
    );
    // The embedded defaults find the peers file where the CLI default
    // `--peers ae-titles.yaml` does.
    assert_eq!(c.resolved_peers_file(), PathBuf::from(DEFAULT_PEERS_PATH));
    // The defaults must themselves be valid.
    assert!(check_config(&c, "", &cfg_path()).is_empty());
}

#[test]
fn empty_and_partial_files_use_defaults() {
    let empty = parse_config_str("# nothing here\n\n", &cfg_path()).unwrap();
    assert_eq!(
        Config {
            source: None,
            source_text: None,
            ..empty
        },
        Config::default()
    );

    let c = parse_config_str("network:\n  max_associations: 4\n", &cfg_path()).unwrap();
    assert_eq!(c.network.max_associations, 4);
    assert_eq!(c.network.max_pdu_length, 262_144);
    assert_eq!(c.node, NodeSection::default());

    let p = parse_peers_str("", &peers_path()).unwrap();
    assert!(p.peers.is_empty());
}

#[test]
fn segmentation_workers_is_replaced_by_the_stage_limit() {
    // One setting per value: the pipeline's per-stage limit is the only
    // one, and the old key says where it went.
    let e = parse_config_str(
        "segmentation:\n  uid_root: '1.2.3'\n  workers: 2\n",
        &cfg_path(),
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!((e.0[0].line, e.0[0].column), (Some(3), Some(3)), "{e}");
    assert!(
        e.0[0]
            .message
            .starts_with("segmentation.workers: replaced by pipeline.stages.segmentation.workers"),
        "{e}"
    );
    let c = parse_config_str(
        "pipeline:\n  stages:\n    segmentation: {workers: 2}\n",
        &cfg_path(),
    )
    .unwrap();
    assert_eq!(c.pipeline.stages["segmentation"].workers, 2);
    // Unset: the pipeline's default, one GPU job at a time.
    let c = parse_config_str("", &cfg_path()).unwrap();
    assert_eq!(c.pipeline.stages["segmentation"].workers, 1);
    // A model file is taken relative to the config file, and checked.
    let e = parse_config_str(
            "segmentation:\n  models:\n    - {name: m, file: nowhere.pt, spacing_mm: [1, 1, 1], patch_size: [8, 8, 8], labels: [{value: 1, name: Liver, colour: [1, 2, 3]}]}\n",
            &cfg_path(),
        )
        .unwrap_err();
    assert!(e.to_string().contains("nowhere.pt does not exist"), "{e}");
}

#[test]
fn report_section_checks_doses_and_fonts() {
    let ok: ReportSection = serde_yaml_ng::from_str("v_gy: [5, 20.5]").unwrap();
    assert!(ok.check().is_empty());
    assert_eq!(ok.fonts, ReportSection::default().fonts);
    let bad: ReportSection = serde_yaml_ng::from_str("v_gy: [-1]\nfonts: []").unwrap();
    let keys: Vec<&str> = bad.check().into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, ["v_gy", "fonts"]);
    assert!(serde_yaml_ng::from_str::<ReportSection>("v_gyy: [1]").is_err());
    let files = ok.font_files(Path::new("/etc/rtnode"));
    assert!(files.regular[0].is_absolute());
    let rel: ReportSection = serde_yaml_ng::from_str("fonts: [f.ttf]").unwrap();
    assert_eq!(
        rel.font_files(Path::new("/etc/rtnode")).regular,
        [PathBuf::from("/etc/rtnode/f.ttf")]
    );
}

#[test]
fn shipped_files_validate() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config_path = root.join("conf/rtnode.yaml");
    let (config, peers) = validate(&config_path, None).unwrap_or_else(|e| panic!("{e}"));

    // Every value in the shipped file is the default, except possibly
    // the data directory.
    let expected = Config {
        node: NodeSection {
            data_dir: config.node.data_dir.clone(),
            ..NodeSection::default()
        },
        source: Some(config_path.clone()),
        source_text: config.source_text.clone(),
        ..Config::default()
    };
    assert_eq!(config, expected);
    assert_eq!(
        config.resolved_peers_file(),
        root.join("conf").join("../ae-titles.yaml")
    );

    // Same file via the CLI-style override.
    let (_, same) = validate(&config_path, Some(&root.join("ae-titles.yaml"))).unwrap();
    assert_eq!(same, peers);

    let storescu = peers.find("STORESCU").expect("STORESCU peer");
    assert_eq!(storescu.host, "127.0.0.1");
    assert!(storescu.may_store);
    assert!(!storescu.receives_results);
    let own = peers.find("RTNODE_SCU").expect("RTNODE_SCU peer");
    assert_eq!(own.host, "127.0.0.1");
    assert!(own.may_store);
    assert!(peers.result_receivers().count() >= 1);
}

#[test]
fn shipped_config_mentions_every_key() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(root.join("conf/rtnode.yaml")).unwrap();
    let loc = Locator::new(&text);
    let defaults = serde_yaml_ng::to_value(Config::default()).unwrap();
    let sections = defaults.as_mapping().unwrap();
    for (section, keys) in sections {
        let section = section.as_str().unwrap();
        let sec_line = loc.top_level(section).map(|i| loc.pos(i, 0));
        assert!(sec_line.is_some(), "section {section} missing");
        // A list section (routing) is present as a whole; its items
        // have no defaults to document.
        let Some(keys) = keys.as_mapping() else {
            continue;
        };
        for key in keys.keys() {
            let key = key.as_str().unwrap();
            assert_ne!(
                loc.section_key(section, key),
                sec_line,
                "{section}.{key} missing from conf/rtnode.yaml"
            );
        }
    }
}

#[test]
fn slurm_settings_per_stage_over_the_defaults() {
    let c = parse_config_str(
            "pipeline:\n  executor: slurm\n  slurm:\n    job: {partition: cpu, time: '02:00:00'}\n  stages:\n    segmentation: {workers: 1, executor: slurm, slurm: {partition: gpu, gres: 'gpu:1'}}\n    qc: {executor: local}\n",
            &cfg_path(),
        )
        .unwrap();
    let p = &c.pipeline;
    assert_eq!(p.executor_for("segmentation"), ExecutorKind::Slurm);
    assert_eq!(p.executor_for("qc"), ExecutorKind::Local);
    assert_eq!(p.executor_for("dvh"), ExecutorKind::Slurm);
    assert_eq!(p.executor_for("export"), ExecutorKind::Local);
    let seg = p.slurm_for("segmentation");
    assert_eq!(seg.partition.as_deref(), Some("gpu"));
    assert_eq!(seg.gres.as_deref(), Some("gpu:1"));
    assert_eq!(seg.time.as_deref(), Some("02:00:00"));
    assert_eq!(p.slurm_for("dvh").partition.as_deref(), Some("cpu"));

    let e = parse_config_str(
        "pipeline:\n  stages:\n    segmentaton: {workers: 1}\n",
        &cfg_path(),
    )
    .unwrap_err();
    assert!(
        e.to_string().contains("unknown stage \"segmentaton\""),
        "{e}"
    );
    let e = parse_config_str(
        "pipeline:\n  stages:\n    export: {executor: slurm}\n",
        &cfg_path(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("cannot run on slurm"), "{e}");
    let e = parse_config_str("pipeline:\n  executor: pbs\n", &cfg_path()).unwrap_err();
    assert!(e.to_string().contains("pbs"), "{e}");
}

#[test]
fn retention_durations_are_checked() {
    let ok = parse_config_str(
        "storage:\n  retention: {older_than: 90d, check_every: 30m}\n",
        &cfg_path(),
    )
    .unwrap();
    let r = ok.storage.retention.unwrap();
    assert_eq!(r.older_than().unwrap().as_secs(), 90 * 86_400);
    assert_eq!(r.check_every().unwrap().as_secs(), 1_800);
    let e = parse_config_str(
        "storage:\n  retention:\n    older_than: 90 fortnights\n    check_every: 0s\n",
        &cfg_path(),
    )
    .unwrap_err();
    let msgs: Vec<&str> = e.0.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs.iter().all(|m| m.starts_with("storage.retention")),
        "{msgs:?}"
    );
}

#[test]
fn http_off_loopback_needs_tls_or_a_proxy_and_tokens() {
    let ok = parse_config_str("http:\n  address: \"\"\n", &cfg_path()).unwrap();
    assert_eq!(ok.http.listen_addr().unwrap(), None);
    let ok = parse_config_str("http:\n  address: \"[::1]:0\"\n", &cfg_path()).unwrap();
    assert!(ok.http.listen_addr().unwrap().is_some());
    let e = parse_config_str(
        "node:\n  port: 104\nhttp:\n  address: 0.0.0.0:8080\n",
        &cfg_path(),
    )
    .unwrap_err();
    let msgs: Vec<String> = e.0.iter().map(|e| e.to_string()).collect();
    assert_eq!(msgs.len(), 2, "{msgs:?}");
    assert!(
        msgs[0].starts_with("/etc/rtnode/rtnode.yaml:4:")
            && msgs[0].contains("http.address: 0.0.0.0:8080 is not a loopback address"),
        "{msgs:?}"
    );
    assert!(msgs[1].contains("http.tokens_file:"), "{msgs:?}");
    // Behind a proxy: the tokens file is still needed, and read.
    let e = parse_config_str(
        "http:\n  address: 0.0.0.0:8080\n  behind_proxy: true\n  tokens_file: none.yaml\n",
        &cfg_path(),
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert!(
        e.0[0].message.contains("/etc/rtnode/none.yaml"),
        "relative to the config: {e}"
    );
    let e = parse_config_str(
        "http:\n  address: localhost\n  max_body_bytes: 0\n",
        &cfg_path(),
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
    let e = parse_config_str(
        "http:\n  cors_origins: [\"https://ok.example\", \"https://bad.example/path\"]\n",
        &cfg_path(),
    )
    .unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert!(e.to_string().contains("cors_origins"), "{e}");
    assert!(e.to_string().contains("bad.example/path"), "{e}");
    let e = parse_config_str("http:\n  adress: 127.0.0.1:1\n", &cfg_path()).unwrap_err();
    assert!(e.to_string().contains("unknown field"), "{e}");
}

#[test]
fn unknown_key_reports_its_line() {
    let text = "\
# rtnode config
node:
  ae_title: RTNODE
  port: 11112

network:
  max_associations: 4
  requre_known_callers: true
";
    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    assert_eq!(e.0.len(), 1);
    let err = &e.0[0];
    assert_eq!(err.line, Some(8));
    assert_eq!(err.column, Some(3));
    assert!(
        err.message.contains("unknown field `requre_known_callers`"),
        "{err}"
    );
    // The location is in front, not repeated in the message.
    assert!(!err.message.contains("line 8"), "{err}");
    assert_eq!(
        err.to_string(),
        format!("/etc/rtnode/rtnode.yaml:8:3: {}", err.message)
    );

    let e = parse_config_str("node: {}\nstorag:\n  fsync: true\n", &cfg_path()).unwrap_err();
    assert_eq!(e.0[0].line, Some(2));

    let peers = "peers:\n  - ae_title: A\n    host: h\n    port: 104\n    colour: red\n";
    let e = parse_peers_str(peers, &peers_path()).unwrap_err();
    assert_eq!(lines_of(&e)[0].0, Some(5));
    assert!(e.0[0].message.contains("colour"));
}

#[test]
fn dvh_interpolation_between_planes_is_refused() {
    let text = "dvh:\n  bin_width_gy: 0.01\n  interpolate_between_planes: true\n";
    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    let got = lines_of(&e);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, Some(3));
    assert!(
        got[0]
            .1
            .contains("less accurate than per-plane slabs on the analytic matrix; see README"),
        "{got:?}"
    );
    let ok = parse_config_str("dvh:\n  interpolate_between_planes: false\n", &cfg_path());
    assert!(!ok.unwrap().dvh.interpolate_between_planes);
}

#[test]
fn type_error_reports_its_line() {
    let text = "node:\n  ae_title: RTNODE\n  port: eleven\n";
    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].line, Some(3));
    assert!(
        e.0[0].message.starts_with("node.port: invalid type"),
        "{}",
        e.0[0]
    );

    // Out of u16 range is a type error too.
    let e = parse_config_str("node:\n  port: 70000\n", &cfg_path()).unwrap_err();
    assert_eq!(e.0[0].line, Some(2));

    let text = "peers:\n  - ae_title: A\n    host: h\n    port: 104\n    may_store: perhaps\n";
    let e = parse_peers_str(text, &peers_path()).unwrap_err();
    assert_eq!(e.0[0].line, Some(5));

    let e = parse_peers_str("peers:\n  - ae_title: A\n    port: 104\n", &peers_path()).unwrap_err();
    assert!(
        e.0[0].message.contains("missing field `host`"),
        "{}",
        e.0[0]
    );
    assert_eq!(e.0[0].line, Some(2));
}

#[test]
fn syntax_error_reports_its_line() {
    let text = "node:\n  ae_title: RTNODE\n    port: 1\n";
    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].line, Some(3), "{}", e.0[0]);
}

#[test]
fn all_semantic_errors_in_one_file_are_reported() {
    let text = "\
node:
  ae_title: THIS_AE_TITLE_IS_TOO_LONG
  bind: 10.0.0.256
  port: 11112
network:
  max_associations: 0
  max_pdu_length: 1024
  idle_timeout_s: 0
storage:
  fsync: false
logging:
  level: debug
  format: xml
";
    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    let got: Vec<_> = e.0.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        got,
        vec![
            (Some(2), Some(3)),
            (Some(3), Some(3)),
            (Some(6), Some(3)),
            (Some(7), Some(3)),
            (Some(8), Some(3)),
            (Some(13), Some(3)),
        ],
        "{e}"
    );
    assert!(e.0[0].message.starts_with("node.ae_title:"));
    assert!(e.0[1].message.contains("10.0.0.256"));
    assert!(e.0[3].message.contains("1024"));
    assert!(e.0[5].message.contains("xml"));

    let text = "network:\n  max_pdu_length: 65536\n  max_pdu_hard_limit: 4096\n";
    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    assert_eq!(lines_of(&e).len(), 1);
    assert_eq!(e.0[0].line, Some(3));
}

#[test]
fn locator_falls_back_to_the_section() {
    // A bad value can come from a default the file never mentions; the
    // section that constrains it is then the best place to point at.
    let text = "logging:\n  level: info\nnetwork:\n  max_pdu_hard_limit: 8192\n";
    let loc = Locator::new(text);
    assert_eq!(
        loc.section_key("network", "max_pdu_length"),
        Some(Pos { line: 3, column: 1 })
    );
    assert_eq!(
        loc.section_key("network", "max_pdu_hard_limit"),
        Some(Pos { line: 4, column: 3 })
    );
    assert_eq!(loc.section_key("storage", "fsync"), None);
    // A key of the same name in another section is not picked up.
    assert_eq!(
        loc.section_key("logging", "max_pdu_hard_limit"),
        Some(Pos { line: 1, column: 1 })
    );

    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].line, Some(4));
    let e = parse_config_str("node:\n  data_dir: ''\n", &cfg_path()).unwrap_err();
    assert_eq!(e.0[0].line, Some(2));
}

#[test]
fn section_with_every_key_commented_out_is_all_defaults() {
    let text = "node:\n#  ae_title: OTHER\nnetwork:\nstorage:\n  fsync: false\n";
    let c = parse_config_str(text, &cfg_path()).unwrap();
    assert_eq!(c.node, NodeSection::default());
    assert_eq!(c.network, NetworkSection::default());
    assert!(!c.storage.fsync);
}

#[test]
fn peers_semantic_errors_and_duplicates() {
    let text = "\
peers:
  - ae_title: ECLIPSE
    host: 192.0.2.10
    port: 104
  -
    # first key on its own line
    ae_title: BAD\\AE
    host: ''
    port: 0
  - {ae_title: FLOW, host: 'not a host', port: 104}
  - port: 104
    host: pacs.example.org
    ae_title: ' ECLIPSE '
";
    let e = parse_peers_str(text, &peers_path()).unwrap_err();
    let got: Vec<_> = e.0.iter().map(|e| (e.line, e.column)).collect();
    assert_eq!(
        got,
        vec![
            (Some(7), Some(5)),
            (Some(8), Some(5)),
            (Some(9), Some(5)),
            // Flow style: only the item is found.
            (Some(10), Some(3)),
            (Some(13), Some(5)),
        ],
        "{e}"
    );
    assert!(e.0[0].message.contains("backslash"));
    assert!(e.0[1].message.contains("empty"));
    assert!(e.0[3].message.contains("not a host"));
    assert!(
        e.0[4]
            .message
            .contains("duplicate AE title \"ECLIPSE\" (first defined at line 2)"),
        "{}",
        e.0[4]
    );
}

#[test]
fn dashes_may_sit_at_the_parent_indentation() {
    let text = "peers:\n- ae_title: A\n  host: h\n  port: 1\n- ae_title: A\n  host: h\n  port: 1\n";
    let e = parse_peers_str(text, &peers_path()).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!((e.0[0].line, e.0[0].column), (Some(5), Some(3)));
}

#[test]
fn ae_title_rules() {
    assert!(check_ae_title("RTNODE").is_ok());
    assert!(check_ae_title("SIXTEEN_CHARS_AE").is_ok());
    assert!(check_ae_title("WITH SPACE").is_ok());
    assert!(check_ae_title("SEVENTEEN_CHARS_A").is_err());
    assert!(check_ae_title("").is_err());
    assert!(check_ae_title("    ").is_err());
    assert!(check_ae_title("A\\B").is_err());
    assert!(check_ae_title("A\tB").is_err());
    assert!(check_ae_title("AÉ").is_err());
}

#[test]
fn host_rules() {
    for ok in [
        "192.0.2.1",
        "::1",
        "pacs",
        "pacs-01.example.org",
        "WIN_HOST",
        "a.b.",
    ] {
        assert!(check_host(ok).is_ok(), "{ok}");
    }
    for bad in ["", " ", "a b", "-pacs", "pacs..org", "[::1]", "host:104"] {
        assert!(check_host(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn find_ignores_padding_but_not_case() {
    let p = parse_peers_str(
        "peers:\n  - ae_title: ECLIPSE\n    host: 192.0.2.10\n    port: 104\n",
        &peers_path(),
    )
    .unwrap();
    let peer = p.find(" ECLIPSE  ").unwrap();
    assert!(peer.may_store);
    assert!(!peer.receives_results);
    assert_eq!(peer.description, None);
    assert!(p.find("eclipse").is_none());
    assert!(p.find("").is_none());
}

#[test]
fn missing_file_is_one_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.yaml");
    let e = load_config(&missing).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].file, missing);
    assert_eq!(e.0[0].line, None);
    assert!(e
        .to_string()
        .starts_with(&format!("{}: ", missing.display())));

    // validate reports the missing config and still checks the
    // default peers file next to it (missing too here).
    let e = validate(&missing, None).unwrap_err();
    let files: Vec<_> = e.0.iter().map(|e| e.file.clone()).collect();
    assert_eq!(files, vec![missing, dir.path().join("../ae-titles.yaml")]);
}

#[test]
fn validate_reports_both_files_and_resolves_relative_peers_file() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("conf")).unwrap();
    let config = dir.path().join("conf/rtnode.yaml");
    // A broken config still names its peers file.
    std::fs::write(
        &config,
        "node:\n  port: 0\n  peers_file: peers/list.yaml\nbogus: 1\n",
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("conf/peers")).unwrap();
    let peers = dir.path().join("conf/peers/list.yaml");
    std::fs::write(
        &peers,
        "peers:\n  - ae_title: ''\n    host: h\n    port: 1\n",
    )
    .unwrap();

    let e = validate(&config, None).unwrap_err();
    let got: Vec<_> = e.0.iter().map(|e| (e.file.clone(), e.line)).collect();
    assert_eq!(
        got,
        vec![(config.clone(), Some(4)), (peers.clone(), Some(2))]
    );

    std::fs::write(&config, "node:\n  peers_file: peers/list.yaml\n").unwrap();
    std::fs::write(&peers, "peers: []\n").unwrap();
    let (c, p) = validate(&config, None).unwrap();
    assert_eq!(c.resolved_peers_file(), peers);
    assert!(p.peers.is_empty());

    // An override wins and is used as given.
    let other = dir.path().join("other.yaml");
    std::fs::write(
        &other,
        "peers:\n  - ae_title: X\n    host: h\n    port: 0\n",
    )
    .unwrap();
    let e = validate(&config, Some(&other)).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!((e.0[0].file.clone(), e.0[0].line), (other, Some(4)));
}

#[test]
fn absolute_peers_file_is_kept() {
    let c = parse_config_str("node:\n  peers_file: /srv/peers.yaml\n", &cfg_path()).unwrap();
    assert_eq!(c.resolved_peers_file(), PathBuf::from("/srv/peers.yaml"));
    let rel = parse_config_str("", Path::new("rtnode.yaml")).unwrap();
    assert_eq!(
        rel.resolved_peers_file(),
        PathBuf::from("../ae-titles.yaml")
    );
}

#[test]
fn lexical_join_pops_only_normal_components() {
    assert_eq!(
        lexical_join(Path::new("conf"), Path::new("../a.yaml")),
        PathBuf::from("a.yaml")
    );
    assert_eq!(
        lexical_join(Path::new(""), Path::new("../a.yaml")),
        PathBuf::from("../a.yaml")
    );
    assert_eq!(
        lexical_join(Path::new("a/b"), Path::new("./c/../d")),
        PathBuf::from("a/b/d")
    );
}

#[test]
fn is_key_matches_whole_keys_only() {
    assert!(is_key("port: 1", "port"));
    assert!(is_key("port:", "port"));
    assert!(is_key("\"port\": 1", "port"));
    assert!(is_key("port : 1", "port"));
    assert!(!is_key("ports: 1", "port"));
    assert!(!is_key("port:1", "port"));
    assert!(!is_key("# port: 1", "port"));
}

#[test]
fn tls_section_problems_are_all_reported_at_its_line() {
    let text = "\
node:
  port: 11112
network:
  tls:
    port: 11112
    certificate: tls/missing.crt
    private_key: /nonexistent/node.key
    handshake_timeout_s: 0
";
    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    let got = lines_of(&e);
    assert_eq!(got.len(), 5, "{e}");
    assert!(got.iter().all(|(l, _)| *l == Some(4)), "{e}");
    let all = e.to_string();
    assert!(all.contains("port 11112 is also node.port"), "{all}");
    assert!(all.contains("handshake_timeout_s"), "{all}");
    // Relative to the config file's directory.
    assert!(
        all.contains("certificate: cannot read /etc/rtnode/tls/missing.crt"),
        "{all}"
    );
    assert!(
        all.contains("private_key: cannot read /nonexistent/node.key"),
        "{all}"
    );
    assert!(all.contains("no ca verifies client certificates"), "{all}");

    // Plaintext off frees the port; the files are still checked.
    let text = "network:\n  tls:\n    port: 11112\n    plaintext: false\n    certificate: a\n    private_key: b\n    require_client_certificate: false\n";
    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    assert_eq!(e.0.len(), 2, "{e}");
    let c = parse_yaml::<Config>(text, &cfg_path()).unwrap();
    assert_eq!(c.network.tls.map(|t| t.port), Some(11112));
}

#[test]
fn peer_tls_settings_are_checked() {
    let text = "\
peers:
  - ae_title: PACS
    host: 192.0.2.20
    port: 2762
    tls_server_name: 'not a name!'
    tls_ca: certs/missing.pem
";
    let e = parse_peers_str(text, &peers_path()).unwrap_err();
    let got = lines_of(&e);
    assert_eq!(got.len(), 3, "{e}");
    assert_eq!(got[0].0, Some(6));
    assert!(
        got[0]
            .1
            .contains("cannot read /etc/rtnode/certs/missing.pem"),
        "{e}"
    );
    assert_eq!(got[1].0, Some(5));
    // tls settings without tls: true are a mistake, not ignored.
    assert!(got[2].1.contains("tls is not true"), "{e}");
}

#[test]
fn a_tls_peer_needs_a_ca_from_somewhere() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("rtnode.yaml");
    std::fs::write(&config, "node:\n  peers_file: peers.yaml\n").unwrap();
    std::fs::write(
        dir.path().join("peers.yaml"),
        "peers:\n  - ae_title: PACS\n    host: h\n    port: 2762\n    tls: true\n",
    )
    .unwrap();
    let e = validate(&config, None).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].line, Some(5));
    assert!(e.0[0].message.contains("no CA to verify"), "{e}");
}

#[test]
fn config_round_trips_through_yaml() {
    let c = Config::default();
    let text = serde_yaml_ng::to_string(&c).unwrap();
    let back = parse_config_str(&text, &cfg_path()).unwrap();
    assert_eq!(
        Config {
            source: None,
            source_text: None,
            ..back
        },
        c
    );
}

#[test]
fn pipeline_stage_keys_are_checked_with_their_line() {
    // A key inside a stage's limits that means nothing.
    let text = "pipeline:\n  stages:\n    dvh:\n      workers: 2\n      wrokers: 3\n";
    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!(e.0[0].line, Some(5), "{e}");
    assert!(e.0[0].message.contains("unknown field `wrokers`"), "{e}");
    // The same in flow style.
    let e =
        parse_config_str("pipeline:\n  stages:\n    dvh: {wrokers: 3}\n", &cfg_path()).unwrap_err();
    assert_eq!(e.0[0].line, Some(3), "{e}");
    assert!(e.0[0].message.contains("wrokers"), "{e}");
    // A stage name the pipeline does not know: at its own line.
    let text = "pipeline:\n  workers: 2\n  stages:\n    dvh: {workers: 1}\n    segmentaton:\n      workers: 1\n";
    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    assert_eq!(e.0.len(), 1, "{e}");
    assert_eq!((e.0[0].line, e.0[0].column), (Some(5), Some(5)), "{e}");
    assert!(
        e.0[0]
            .message
            .starts_with("pipeline.stages.segmentaton: unknown stage"),
        "{e}"
    );
    // A Slurm setting: at its key.
    let text = "pipeline:\n  slurm:\n    poll_s: 0\n";
    let e = parse_config_str(text, &cfg_path()).unwrap_err();
    assert_eq!(e.0[0].line, Some(3), "{e}");
    assert!(e.0[0].message.starts_with("pipeline.slurm.poll_s:"), "{e}");
}

#[test]
fn trigger_rules_are_words_of_the_config() {
    use crate::pipeline::TriggerRule;
    let c = parse_config_str(
        "pipeline:\n  trigger: full\n  trigger_by_calling_ae:\n    SIM: ct\n",
        &cfg_path(),
    )
    .unwrap();
    assert_eq!(c.pipeline.trigger, TriggerRule::Full);
    assert_eq!(c.pipeline.trigger_for(Some(" SIM ")), TriggerRule::Ct);
    assert_eq!(c.pipeline.trigger_for(Some("TPS")), TriggerRule::Full);
    assert_eq!(Config::default().pipeline.trigger, TriggerRule::CtRtstruct);
    for rule in TriggerRule::ALL {
        let text = format!("pipeline:\n  trigger: {}\n", rule.as_str());
        let c = parse_config_str(&text, &cfg_path()).unwrap();
        assert_eq!(c.pipeline.trigger, rule);
    }
    let e = parse_config_str(
        "pipeline:\n  stable_age_s: 1\n  trigger: ctt\n",
        &cfg_path(),
    )
    .unwrap_err();
    assert_eq!(e.0[0].line, Some(3), "{e}");
    assert!(e.0[0].message.contains("ct+rtstruct"), "{e}");
    let e = parse_config_str(
        "pipeline:\n  trigger_by_calling_ae:\n    SIM: partial\n",
        &cfg_path(),
    )
    .unwrap_err();
    assert!(e.0[0].message.contains("partial"), "{e}");
    assert!(e.0[0].line.is_some(), "{e}");
}

#[test]
fn a_named_config_that_is_missing_is_an_error() {
    let missing = Path::new("/nonexistent/rtnode/missing.yaml");
    let e = load_named(missing).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].file, missing);
    assert!(e.0[0].message.contains("not found"), "{e}");
    let e = load_named_or_default(Some(missing)).unwrap_err();
    assert!(e.to_string().contains("missing.yaml"), "{e}");
    // A named file that exists is read, and remembered as the source.
    let dir = std::env::temp_dir().join(format!("rtnode-named-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("rtnode.yaml");
    std::fs::write(&file, "node:\n  ae_title: NAMED\n").unwrap();
    let c = load_named_or_default(Some(&file)).unwrap();
    assert_eq!(c.node.ae_title, "NAMED");
    assert_eq!(c.source.as_deref(), Some(file.as_path()));
    std::fs::remove_dir_all(&dir).unwrap();
}
