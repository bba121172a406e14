//! Fault injection for the crash and retry tests, off unless the
//! environment asks: `RTNODE_FAULTS="organize:delay_ms=3000,qc:fail=1"`
//! delays a stage's runs, or fails its first N attempts. Operators never
//! set it; tests set it on the process they start.

use std::collections::HashMap;
use std::sync::OnceLock;
use std::time::Duration;

#[derive(Default, Clone, Copy)]
struct Fault {
    delay_ms: u64,
    fail: u32,
}

fn faults() -> &'static HashMap<String, Fault> {
    static F: OnceLock<HashMap<String, Fault>> = OnceLock::new();
    F.get_or_init(|| {
        let mut m: HashMap<String, Fault> = HashMap::new();
        let Ok(spec) = std::env::var("RTNODE_FAULTS") else {
            return m;
        };
        for part in spec.split(',') {
            let Some((stage, what)) = part.split_once(':') else {
                continue;
            };
            let Some((k, v)) = what.split_once('=') else {
                continue;
            };
            let f = m.entry(stage.trim().to_string()).or_default();
            match (k.trim(), v.trim().parse::<u64>()) {
                ("delay_ms", Ok(n)) => f.delay_ms = n,
                ("fail", Ok(n)) => f.fail = n as u32,
                _ => {}
            }
        }
        if !m.is_empty() {
            tracing::warn!(spec = %spec, "fault injection active (RTNODE_FAULTS)");
        }
        m
    })
}

pub fn inject(stage: crate::stages::StageId, attempt: u32) -> anyhow::Result<()> {
    let Some(f) = faults().get(stage.as_str()).copied() else {
        return Ok(());
    };
    if f.delay_ms > 0 {
        std::thread::sleep(Duration::from_millis(f.delay_ms));
    }
    if attempt <= f.fail {
        anyhow::bail!(
            "injected failure of {stage} (attempt {attempt} of {} set to fail)",
            f.fail
        );
    }
    Ok(())
}
