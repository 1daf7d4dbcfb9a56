//! Dockerfile parser tests: one table per rule.

mod errors;
mod expansion;
mod heredocs;
mod instructions;
mod properties;
mod rules;

use berth_builder::dockerfile::{Instruction, InstructionKind, parse};
use std::collections::HashMap;

/// Parses `FROM scratch` followed by `body` and returns the instructions after the FROM.
fn after_from(body: &str) -> Vec<Instruction> {
    let source = format!("FROM scratch\n{body}");
    let file = parse(&source).unwrap_or_else(|e| panic!("parse {body:?}: {e}"));
    file.instructions[1..].to_vec()
}

/// The single instruction in `body` (after an implicit `FROM scratch`).
fn one(body: &str) -> InstructionKind {
    let mut instructions = after_from(body);
    assert_eq!(instructions.len(), 1, "{body:?} gave {instructions:#?}");
    instructions.remove(0).kind
}

fn env(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}
