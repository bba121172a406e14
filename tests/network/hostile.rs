//! A bounded barrage of hostile input on the SCP port: random byte streams,
//! PDUs announcing gigabyte lengths, truncated and mangled A-ASSOCIATE-RQs,
//! associations that stop mid-data-set, PDV items longer than their PDU and
//! garbage PDUs after a good association. Afterwards the server must still
//! answer C-ECHO, hold no partial file, have stored nothing, never have
//! panicked, and its resident memory must be flat from one barrage to the
//! next.
//!
//! Every connection draws its input from an RNG seeded by (barrage, index),
//! so a failure replays byte for byte whatever the thread interleaving.
//!
//! Two ignored tests at the end pin down slot-exhaustion bugs (peers that
//! stall where the server has no timeout); run them with `-- --ignored`.

use crate::common;

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::{Server, ServerOptions};
use dicom_ul::pdu::{AssociationRQ, Pdu, PresentationContextProposed, UserVariableItem};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SEED: u64 = 0x7274_6e6f_6465_0001;
const CONNECTIONS_PER_BARRAGE: usize = 2000;
/// Half the test config's 16 associations: even with every worker's previous
/// association not yet reaped by the server, a new one finds a free slot, so
/// association-level attacks get past negotiation.
const WORKERS: usize = 8;
/// Far above anything a healthy server needs on loopback, far below the
/// server's own 20 s idle timeout: a read that hits it means the server was
/// waiting for bytes it had no business waiting for.
const IO_TIMEOUT: Duration = Duration::from_secs(10);
/// Fixed by the issue: RSS after the second barrage at most this much above
/// RSS after the first.
const RSS_GROWTH_LIMIT_KB: u64 = 10 * 1024;

const CT_IMAGE_STORAGE: &str = "1.2.840.10008.5.1.4.1.1.2";
const EXPLICIT_VR_LE: &str = "1.2.840.10008.1.2.1";
const APPLICATION_CONTEXT: &str = "1.2.840.10008.3.1.1.1";
const CT_CONTEXT: u8 = 1;

#[derive(Clone, Copy, Debug)]
enum Attack {
    RandomBytes,
    HugeLength,
    TruncatedRq,
    StopMidDataSet,
    PdvOverrun,
    GarbageAfterRq,
}

const ATTACKS: [Attack; 6] = [
    Attack::RandomBytes,
    Attack::HugeLength,
    Attack::TruncatedRq,
    Attack::StopMidDataSet,
    Attack::PdvOverrun,
    Attack::GarbageAfterRq,
];

#[derive(Default)]
struct Tally {
    per_attack: [AtomicU64; 6],
    bytes_sent: AtomicU64,
    /// Associations that got an A-ASSOCIATE-AC.
    accepted: AtomicU64,
    /// Associations refused (A-ASSOCIATE-RJ or closed), e.g. all slots busy.
    refused: AtomicU64,
    /// Attacks after which the server must hang up on its own, and did.
    closed_promptly: AtomicU64,
    /// The same attacks where the server was still waiting after IO_TIMEOUT.
    hung: AtomicU64,
}

impl Tally {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
}

fn add(c: &AtomicU64, n: u64) {
    c.fetch_add(n, Ordering::Relaxed);
}

fn rng_for(barrage: u64, index: usize) -> StdRng {
    StdRng::seed_from_u64(SEED ^ (barrage << 40) ^ index as u64)
}

fn random_bytes(rng: &mut StdRng, n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rng.fill(&mut v[..]);
    v
}

/// Errors are expected: the server may hang up on us at any moment, and
/// that is the point.
fn send(s: &mut TcpStream, tally: &Tally, bytes: &[u8]) -> bool {
    let ok = s.write_all(bytes).is_ok();
    if ok {
        add(&tally.bytes_sent, bytes.len() as u64);
    }
    ok
}

fn connect(port: u16) -> TcpStream {
    let s = TcpStream::connect(("127.0.0.1", port)).expect("connect to the server");
    s.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
    s.set_nodelay(true).unwrap();
    s
}

fn associate_rq_bytes(rng: &mut StdRng) -> Vec<u8> {
    let mut contexts = vec![PresentationContextProposed {
        id: CT_CONTEXT,
        abstract_syntax: CT_IMAGE_STORAGE.into(),
        transfer_syntaxes: vec![EXPLICIT_VR_LE.into()],
    }];
    // Some requests carry a pile of extra contexts to stretch the parser.
    for i in 0..rng.gen_range(0..8u8) {
        contexts.push(PresentationContextProposed {
            id: 3 + 2 * i,
            abstract_syntax: format!("1.2.840.10008.5.1.4.1.1.{}", rng.gen_range(1..500)),
            transfer_syntaxes: vec!["1.2.840.10008.1.2".into(), EXPLICIT_VR_LE.into()],
        });
    }
    let rq = AssociationRQ {
        protocol_version: 1,
        calling_ae_title: "STORESCU".into(),
        called_ae_title: "RTNODE".into(),
        application_context_name: APPLICATION_CONTEXT.into(),
        presentation_contexts: contexts,
        user_variables: vec![
            UserVariableItem::MaxLength(16_384),
            UserVariableItem::ImplementationClassUID("1.2.826.0.1.3680043.9.7433.1.1".into()),
            UserVariableItem::ImplementationVersionName("HOSTILE".into()),
        ],
    };
    let mut buf = Vec::new();
    dicom_ul::pdu::write_pdu(&mut buf, &Pdu::AssociationRQ(rq)).unwrap();
    buf
}

/// One PDU from the server, bounded; `None` on a clean close.
fn read_pdu(s: &mut TcpStream) -> io::Result<Option<(u8, Vec<u8>)>> {
    let mut h = [0u8; 6];
    match s.read_exact(&mut h) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_be_bytes([h[2], h[3], h[4], h[5]]);
    if len > 1 << 20 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("server sent a PDU of {len} bytes"),
        ));
    }
    let mut body = vec![0u8; len as usize];
    s.read_exact(&mut body)?;
    Ok(Some((h[0], body)))
}

/// Opens a proper association; false if the server did not accept it.
fn associate(s: &mut TcpStream, rng: &mut StdRng, tally: &Tally) -> bool {
    let rq = associate_rq_bytes(rng);
    if !send(s, tally, &rq) {
        add(&tally.refused, 1);
        return false;
    }
    match read_pdu(s) {
        Ok(Some((0x02, _))) => {
            add(&tally.accepted, 1);
            true
        }
        _ => {
            add(&tally.refused, 1);
            false
        }
    }
}

/// After an attack the server must end on its own: read (without closing our
/// side, which would hand it an EOF) until it hangs up.
fn expect_hang_up(s: &mut TcpStream, tally: &Tally) {
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) =>
            {
                add(&tally.hung, 1);
                return;
            }
            // A reset is a hang-up too (our unread bytes were in its buffer).
            Err(_) => break,
        }
    }
    add(&tally.closed_promptly, 1);
}

fn pdu(pdu_type: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![pdu_type, 0];
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A P-DATA-TF with one PDV item; control bit 0 = command, bit 1 = last.
fn pdata(context: u8, control: u8, data: &[u8]) -> Vec<u8> {
    let mut item = ((data.len() + 2) as u32).to_be_bytes().to_vec();
    item.push(context);
    item.push(control);
    item.extend_from_slice(data);
    pdu(0x04, &item)
}

/// Explicit VR little endian element with a 16-bit length.
fn element(out: &mut Vec<u8>, group: u16, elem: u16, vr: &[u8; 2], value: &[u8]) {
    out.extend_from_slice(&group.to_le_bytes());
    out.extend_from_slice(&elem.to_le_bytes());
    out.extend_from_slice(vr);
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
}

fn padded(s: &str, pad: u8) -> Vec<u8> {
    let mut v = s.as_bytes().to_vec();
    if v.len() % 2 == 1 {
        v.push(pad);
    }
    v
}

/// The start of a CT data set whose pixel data announces 512 KiB: a real
/// store in progress when the connection drops.
fn ct_data_set_head(sop_instance: &str) -> Vec<u8> {
    let mut out = Vec::new();
    element(
        &mut out,
        0x0008,
        0x0016,
        b"UI",
        &padded(CT_IMAGE_STORAGE, 0),
    );
    element(&mut out, 0x0008, 0x0018, b"UI", &padded(sop_instance, 0));
    element(&mut out, 0x0008, 0x0060, b"CS", b"CT");
    element(&mut out, 0x0010, 0x0010, b"PN", b"HOSTILE^BARRAGE ");
    element(&mut out, 0x0028, 0x0010, b"US", &512u16.to_le_bytes());
    element(&mut out, 0x0028, 0x0011, b"US", &512u16.to_le_bytes());
    out.extend_from_slice(&0x7FE0u16.to_le_bytes());
    out.extend_from_slice(&0x0010u16.to_le_bytes());
    out.extend_from_slice(b"OW\0\0");
    out.extend_from_slice(&(512u32 * 512 * 2).to_le_bytes());
    out
}

fn store_command(rng: &mut StdRng) -> (Vec<u8>, String) {
    let uid = format!("2.25.{}", rng.gen_range(1..u64::MAX));
    let cmd = rtnode::dimse::c_store_rq(rng.gen(), CT_IMAGE_STORAGE, &uid);
    (rtnode::dimse::encode_command(&cmd), uid)
}

/// Sends the command set, sometimes in two fragments as a peer may.
fn send_command(s: &mut TcpStream, rng: &mut StdRng, tally: &Tally, cmd: &[u8]) -> bool {
    if rng.gen_bool(0.3) {
        let cut = rng.gen_range(1..cmd.len());
        send(s, tally, &pdata(CT_CONTEXT, 0x01, &cmd[..cut]))
            && send(s, tally, &pdata(CT_CONTEXT, 0x03, &cmd[cut..]))
    } else {
        send(s, tally, &pdata(CT_CONTEXT, 0x03, cmd))
    }
}

fn random_bytes_attack(port: u16, rng: &mut StdRng, tally: &Tally) {
    let mut s = connect(port);
    let n = rng.gen_range(0..64 * 1024);
    let mut bytes = random_bytes(rng, n);
    // A quarter look like an A-ASSOCIATE-RQ header with a consistent length,
    // so the random body reaches dicom-ul's parser instead of the type check.
    if n >= 6 && rng.gen_bool(0.25) {
        bytes[0] = 0x01;
        bytes[1] = 0;
        bytes[2..6].copy_from_slice(&((n - 6) as u32).to_be_bytes());
    }
    send(&mut s, tally, &bytes);
}

const HUGE: [u32; 6] = [
    0xFFFF_FFF0,
    0xFFFF_FFFF,
    0x8000_0000,
    0x4000_0000,
    // Just past the control-PDU and the P-DATA limits.
    (1 << 20) + 1,
    (1 << 24) + 1,
];

fn huge_length_attack(port: u16, rng: &mut StdRng, tally: &Tally) {
    let mut s = connect(port);
    let mut len = HUGE[rng.gen_range(0..HUGE.len())];
    let pdu_type = if rng.gen_bool(0.5) {
        // Before negotiation every type must be refused for its length or
        // for not being an A-ASSOCIATE-RQ.
        [0x01, 0x01, 0x04, 0x02, 0x07, rng.gen()][rng.gen_range(0..6)]
    } else {
        if !associate(&mut s, rng, tally) {
            return;
        }
        // 1 MiB + 1 is a legal P-DATA length; the random tail could then
        // hold a PDV item that fits and the server would rightly wait.
        if len == (1 << 20) + 1 {
            len = u32::MAX;
        }
        // A release body is skipped up to 1 KiB, so it gets at least that
        // much below; every other type is refused at its header.
        [0x04, 0x04, 0x01, 0x05, 0x06, 0x03][rng.gen_range(0..6)]
    };
    let mut bytes = vec![pdu_type, 0];
    bytes.extend_from_slice(&len.to_be_bytes());
    let tail = rng.gen_range(1024..4096);
    bytes.extend_from_slice(&random_bytes(rng, tail));
    send(&mut s, tally, &bytes);
    expect_hang_up(&mut s, tally);
}

fn truncated_rq_attack(port: u16, rng: &mut StdRng, tally: &Tally) {
    let mut s = connect(port);
    let mut rq = associate_rq_bytes(rng);
    if rng.gen_bool(0.7) {
        let cut = rng.gen_range(0..rq.len());
        rq.truncate(cut);
    } else {
        // Mangled rather than cut: flips land in lengths, item types, UIDs.
        for _ in 0..rng.gen_range(1..8) {
            let i = rng.gen_range(0..rq.len());
            rq[i] = rng.gen();
        }
    }
    send(&mut s, tally, &rq);
}

fn stop_mid_data_set_attack(port: u16, rng: &mut StdRng, tally: &Tally) {
    let mut s = connect(port);
    if !associate(&mut s, rng, tally) {
        return;
    }
    let (cmd, uid) = store_command(rng);
    if !send_command(&mut s, rng, tally, &cmd) {
        return;
    }
    let mut data = ct_data_set_head(&uid);
    let total = rng.gen_range(0..data.len() + 256 * 1024);
    if total > data.len() {
        let more = random_bytes(rng, total - data.len());
        data.extend_from_slice(&more);
    } else {
        data.truncate(total);
    }
    // Never the last-fragment bit: this data set must not complete.
    for chunk in data.chunks(rng.gen_range(1024..16 * 1024)) {
        if !send(&mut s, tally, &pdata(CT_CONTEXT, 0x00, chunk)) {
            return;
        }
    }
    if rng.gen_bool(0.5) {
        // Stop inside a PDU too: announce more than ever arrives.
        let chunk = random_bytes(rng, 4096);
        let bytes = pdata(CT_CONTEXT, 0x00, &chunk);
        let cut = rng.gen_range(1..bytes.len());
        send(&mut s, tally, &bytes[..cut]);
    }
}

fn pdv_overrun_attack(port: u16, rng: &mut StdRng, tally: &Tally) {
    let mut s = connect(port);
    if !associate(&mut s, rng, tally) {
        return;
    }
    let control = if rng.gen_bool(0.5) {
        0x03
    } else {
        let (cmd, _) = store_command(rng);
        if !send_command(&mut s, rng, tally, &cmd) {
            return;
        }
        0x00
    };
    let carried = rng.gen_range(0..64usize);
    let pdu_len = (6 + carried) as u32;
    let item_len: u32 = match rng.gen_range(0..4) {
        // Just over what the PDU holds, far over, and too short to hold the
        // context id and control byte.
        0 => pdu_len - 4 + 1,
        1 => rng.gen_range(pdu_len..u32::MAX),
        2 => u32::MAX,
        _ => rng.gen_range(0..2),
    };
    let mut bytes = vec![0x04, 0];
    bytes.extend_from_slice(&pdu_len.to_be_bytes());
    bytes.extend_from_slice(&item_len.to_be_bytes());
    bytes.push(CT_CONTEXT);
    bytes.push(control);
    bytes.extend_from_slice(&random_bytes(rng, carried));
    send(&mut s, tally, &bytes);
    expect_hang_up(&mut s, tally);
}

fn garbage_after_rq_attack(port: u16, rng: &mut StdRng, tally: &Tally) {
    let mut s = connect(port);
    if !associate(&mut s, rng, tally) {
        return;
    }
    for _ in 0..rng.gen_range(1..8) {
        let n = rng.gen_range(0..8192);
        let body = random_bytes(rng, n);
        let bytes = if rng.gen_bool(0.5) {
            // Random PDV content on the accepted context: reaches the DIMSE
            // command decoder and the data set path.
            pdata(CT_CONTEXT, rng.gen_range(0..4), &body)
        } else {
            pdu(rng.gen(), &body)
        };
        if !send(&mut s, tally, &bytes) {
            return;
        }
    }
}

fn attack(port: u16, barrage: u64, index: usize, tally: &Tally) {
    let mut rng = rng_for(barrage, index);
    let which = rng.gen_range(0..ATTACKS.len());
    add(&tally.per_attack[which], 1);
    match ATTACKS[which] {
        Attack::RandomBytes => random_bytes_attack(port, &mut rng, tally),
        Attack::HugeLength => huge_length_attack(port, &mut rng, tally),
        Attack::TruncatedRq => truncated_rq_attack(port, &mut rng, tally),
        Attack::StopMidDataSet => stop_mid_data_set_attack(port, &mut rng, tally),
        Attack::PdvOverrun => pdv_overrun_attack(port, &mut rng, tally),
        Attack::GarbageAfterRq => garbage_after_rq_attack(port, &mut rng, tally),
    }
}

fn barrage(port: u16, barrage: u64) -> Tally {
    let tally = Tally::default();
    let next = AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| {
        for _ in 0..WORKERS {
            scope.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= CONNECTIONS_PER_BARRAGE {
                    break;
                }
                attack(port, barrage, i, &tally);
            });
        }
    });
    eprintln!(
        "barrage {barrage}: {CONNECTIONS_PER_BARRAGE} connections in {:.1} s, {} MB sent; \
         per attack {:?} = {:?}; associations accepted {} refused {}; \
         hung up promptly {} hung {}",
        started.elapsed().as_secs_f64(),
        Tally::get(&tally.bytes_sent) / 1_000_000,
        ATTACKS,
        tally.per_attack.iter().map(Tally::get).collect::<Vec<_>>(),
        Tally::get(&tally.accepted),
        Tally::get(&tally.refused),
        Tally::get(&tally.closed_promptly),
        Tally::get(&tally.hung),
    );
    tally
}

fn echo(server: &Server) {
    let port = server.port.to_string();
    let out = common::run_dcmtk("echoscu", &["-aec", "RTNODE", "127.0.0.1", &port]);
    assert!(
        out.status.success(),
        "C-ECHO failed after the barrage: {}{}\nserver log tail:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
        log_tail(server),
    );
}

fn log_tail(server: &Server) -> String {
    let log = server.log_text();
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

fn tmp_entries(data_dir: &Path) -> Vec<String> {
    std::fs::read_dir(data_dir.join("tmp"))
        .map(|rd| {
            rd.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every connection is closed by our side, so the server sees EOF at once;
/// what is left is abandoning partial files on its blocking writer threads.
fn settle(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !tmp_entries(&server.data_dir).is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
}

fn check_barrage(server: &Server, tally: &Tally) {
    assert_eq!(
        Tally::get(&tally.hung),
        0,
        "the server kept waiting on a connection it should have dropped"
    );
    // Association-level attacks must mostly get past negotiation, or they
    // test nothing beyond the A-ASSOCIATE-RQ reader.
    let accepted = Tally::get(&tally.accepted);
    let refused = Tally::get(&tally.refused);
    assert!(
        accepted > 0 && accepted >= 4 * refused,
        "too few associations accepted ({accepted} accepted, {refused} refused)"
    );
    echo(server);
    settle(server);
}

#[test]
fn hostile_barrage_leaves_the_server_answering_with_flat_memory() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &ServerOptions::default());
    let pid = server.pid();
    let started = Instant::now();

    // Warm-up: thread pools and allocator arenas reach their working size
    // here, so the two measured barrages compare like with like. What still
    // grows is the association log (redb caches its pages: about 0.3 kB of
    // RSS per connection, until it is trimmed at 100,000 records).
    let warm = barrage(server.port, 0);
    check_barrage(&server, &warm);
    let rss0 = common::rss_kb(pid);

    let first = barrage(server.port, 1);
    check_barrage(&server, &first);
    let rss1 = common::rss_kb(pid);

    let second = barrage(server.port, 2);
    check_barrage(&server, &second);
    let rss2 = common::rss_kb(pid);

    eprintln!(
        "RSS after warm-up {rss0} kB, after barrage 1 {rss1} kB, after barrage 2 {rss2} kB \
         (growth {} kB); total {:.1} s",
        rss2 as i64 - rss1 as i64,
        started.elapsed().as_secs_f64()
    );
    assert!(
        rss2 <= rss1 + RSS_GROWTH_LIMIT_KB,
        "resident memory grew from {rss1} kB to {rss2} kB across one barrage \
         (limit {RSS_GROWTH_LIMIT_KB} kB)"
    );

    let stored = common::stored_files(&server.data_dir);
    assert!(
        stored.is_empty(),
        "nothing sent was a complete instance, yet the store holds {stored:?}"
    );
    let tmp = tmp_entries(&server.data_dir);
    assert!(tmp.is_empty(), "partial files left in tmp/: {tmp:?}");
    let log = server.log_text();
    assert!(
        !log.contains("panicked"),
        "the server panicked:\n{}",
        log.lines()
            .filter(|l| l.contains("panicked"))
            .take(10)
            .collect::<Vec<_>>()
            .join("\n")
    );
    server.stop();
}

/// Idle timeout for the stall tests: short, so that waiting three times it
/// costs seconds.
const SHORT_IDLE_S: u64 = 2;

/// A server with two association slots and a 2 s idle timeout.
fn start_small_server(dir: &Path) -> Server {
    let opts = ServerOptions {
        max_associations: 2,
        ..ServerOptions::default()
    };
    let cfg = common::write_config(dir, &opts);
    let text = std::fs::read_to_string(&cfg).unwrap();
    let short = text.replace(
        "idle_timeout_s: 20",
        &format!("idle_timeout_s: {SHORT_IDLE_S}"),
    );
    assert_ne!(text, short, "test config no longer sets idle_timeout_s: 20");
    std::fs::write(&cfg, short).unwrap();
    Server::start_with_config(dir, &cfg)
}

fn associate_or_panic(port: u16, rng: &mut StdRng) -> TcpStream {
    let mut s = connect(port);
    assert!(
        associate(&mut s, rng, &Tally::default()),
        "association refused"
    );
    s
}

/// Both slots held by stalled peers; three idle timeouts later a newcomer
/// must get in.
fn assert_slots_freed(server: &Server) {
    std::thread::sleep(Duration::from_secs(3 * SHORT_IDLE_S));
    echo(server);
}

#[test]
fn stalled_release_does_not_hold_an_association_slot() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_small_server(dir.path());
    let mut rng = rng_for(100, 0);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = associate_or_panic(server.port, &mut rng);
            // The header of an A-RELEASE-RQ announcing its 4-byte body,
            // which never comes.
            s.write_all(&[0x05, 0, 0, 0, 0, 4]).unwrap();
            s
        })
        .collect();
    assert_slots_freed(&server);
    drop(held);
}

#[test]
fn peer_that_never_reads_does_not_hold_an_association_slot() {
    let dir = tempfile::tempdir().unwrap();
    let server = start_small_server(dir.path());
    let mut rng = rng_for(101, 0);
    let echo_rq = pdata(
        CT_CONTEXT,
        0x03,
        &rtnode::dimse::encode_command(&rtnode::dimse::c_echo_rq(1)),
    );
    let burst: Vec<u8> = echo_rq.repeat(256);
    let held: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = associate_or_panic(server.port, &mut rng);
            s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
            // C-ECHO-RQs until the responses we never read fill both
            // socket buffers and the server stops reading us.
            let deadline = Instant::now() + Duration::from_secs(60);
            while s.write_all(&burst).is_ok() {
                assert!(Instant::now() < deadline, "server never stopped reading");
            }
            s
        })
        .collect();
    assert_slots_freed(&server);
    drop(held);
}
