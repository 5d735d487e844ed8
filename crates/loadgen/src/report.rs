//! Benchmark figures and the one report they end up in.
//!
//! Each benchmark appends its figures to `bench/out/figures.jsonl`; `loadgen report` turns
//! them into `bench/report.md` and `bench/report.json`. A figure is always shown beside a
//! ceiling (or floor) measured in the same run on the same machine, so the ratio says how close
//! to the hardware and Kafka's own tools the system gets.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Figure {
    /// What was measured, e.g. "audit ingest (PostgreSQL)".
    pub name: String,
    pub unit: String,
    pub value: f64,
    /// What it is compared with, e.g. "kafka-consumer-perf-test, same topic".
    pub reference: String,
    pub reference_value: f64,
    /// `value / reference_value`.
    pub ratio: f64,
    /// Details: sizes, durations, settings.
    pub notes: String,
}

impl Figure {
    pub fn new(
        name: &str,
        unit: &str,
        value: f64,
        reference: &str,
        reference_value: f64,
        notes: String,
    ) -> Self {
        let ratio = if reference_value > 0.0 {
            value / reference_value
        } else {
            0.0
        };
        Self {
            name: name.to_owned(),
            unit: unit.to_owned(),
            value,
            reference: reference.to_owned(),
            reference_value,
            ratio,
            notes,
        }
    }
}

pub fn out_dir(repo: &Path) -> PathBuf {
    repo.join("bench/out")
}

/// Append figures to the run's figure file.
pub fn record(repo: &Path, figures: &[Figure]) -> anyhow::Result<()> {
    let dir = out_dir(repo);
    std::fs::create_dir_all(&dir)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("figures.jsonl"))?;
    for f in figures {
        writeln!(file, "{}", serde_json::to_string(f)?)?;
        println!(
            "{:<46} {:>12.1} {:<10} vs {:>12.1} ({}) ratio {:.2}",
            f.name, f.value, f.unit, f.reference_value, f.reference, f.ratio
        );
    }
    Ok(())
}

#[derive(Debug, Serialize)]
struct Report {
    generated_at: String,
    cores: usize,
    versions: serde_json::Value,
    figures: Vec<Figure>,
}

/// Write `bench/report.md` and `bench/report.json` from the run's figures.
pub fn write(repo: &Path, versions: serde_json::Value) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(out_dir(repo).join("figures.jsonl")).unwrap_or_default();
    let figures: Vec<Figure> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let report = Report {
        generated_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        cores: std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1),
        versions,
        figures,
    };
    std::fs::write(
        repo.join("bench/report.json"),
        serde_json::to_string_pretty(&report)?,
    )?;
    let mut md = String::new();
    md.push_str("# Benchmark report\n\n");
    md.push_str(&format!(
        "Generated {} by `make bench` on {} cores. Versions: {}.\n\n",
        report.generated_at,
        report.cores,
        report
            .versions
            .as_object()
            .map(|o| o
                .iter()
                .map(|(k, v)| format!("{k} {}", v.as_str().unwrap_or("?")))
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    ));
    md.push_str("Every figure is measured beside its ceiling (or floor) in the same run; the ratio is value / reference.\n\n");
    md.push_str("| figure | value | unit | reference | reference value | ratio | notes |\n|---|---:|---|---|---:|---:|---|\n");
    // A `|` inside a cell would end it.
    let cell = |text: &str| text.replace('|', "\\|");
    for f in &report.figures {
        md.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            cell(&f.name),
            number(f.value),
            cell(&f.unit),
            cell(&f.reference),
            number(f.reference_value),
            ratio(f.ratio),
            cell(&f.notes)
        ));
    }
    std::fs::write(repo.join("bench/report.md"), md)?;
    Ok(())
}

/// A measured value: whole above 100, one decimal above 1, two significant digits below.
fn number(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.1}"),
        0.0 => "0".to_owned(),
        a => {
            let decimals = (-a.log10()).floor() as usize + 2;
            format!("{v:.decimals$}")
        }
    }
}

/// Two decimals, or two significant digits for a ratio below 0.01 (which would show as 0.00).
fn ratio(r: f64) -> String {
    if r != 0.0 && r.abs() < 0.01 {
        let decimals = (-r.abs().log10()).ceil() as usize + 1;
        format!("{r:.decimals$}")
    } else {
        format!("{r:.2}")
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn small_ratios_keep_two_significant_digits() {
        assert_eq!(super::ratio(0.92), "0.92");
        assert_eq!(super::ratio(0.0013), "0.0013");
        assert_eq!(super::ratio(0.0), "0.00");
        assert_eq!(super::ratio(34.48), "34.48");
    }

    #[test]
    fn values_show_what_matters() {
        assert_eq!(super::number(46848.9), "46849");
        assert_eq!(super::number(20.24), "20.2");
        assert_eq!(super::number(0.132), "0.13");
        assert_eq!(super::number(0.0456), "0.046");
    }
}
