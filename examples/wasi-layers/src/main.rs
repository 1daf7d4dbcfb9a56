//! Counts the words of every text under /data (one image layer), skipping words shorter than
//! the `min_length` set in /etc/wordcount.conf (another layer), and writes the counts to
//! /results/counts.txt: a volume, so they outlive the container.

use std::collections::BTreeMap;
use std::fmt::Write as _;

fn main() {
    let conf = std::fs::read_to_string("/etc/wordcount.conf").expect("reading /etc/wordcount.conf");
    let min_length: usize = conf
        .lines()
        .find_map(|l| l.strip_prefix("min_length="))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(1);
    let mut files: Vec<_> = std::fs::read_dir("/data")
        .expect("reading /data")
        .map(|e| e.expect("listing /data").path())
        .collect();
    files.sort();
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("reading a text");
        for w in text.split(|c: char| !c.is_alphanumeric()) {
            if w.chars().count() >= min_length {
                *counts.entry(w.to_lowercase()).or_default() += 1;
            }
        }
    }
    let mut out = String::new();
    for (w, n) in &counts {
        writeln!(out, "{n} {w}").unwrap();
    }
    std::fs::create_dir_all("/results").expect("making /results");
    std::fs::write("/results/counts.txt", &out).expect("writing /results/counts.txt");
    println!(
        "counted {} distinct words (min length {min_length}) in {} files into /results/counts.txt",
        counts.len(),
        files.len()
    );
}
