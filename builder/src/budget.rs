//! What one build may spend on variable substitution.
//!
//! The expander bounds each word ([`crate::dockerfile::MAX_GROWTH`]), but a Dockerfile can
//! still ask for many large words: a 1 MiB ARG used in thousands of LABEL lines. So a build
//! counts the bytes of every variable value it substitutes, and stops at [`MAX_SUBSTITUTED`].

use std::cell::Cell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::dockerfile::Env;

/// The most bytes of variable values one build may substitute, all instructions together:
/// 64 MiB, thousands of times what real builds use.
pub const MAX_SUBSTITUTED: usize = 64 << 20;

/// The bytes of variable values a build has substituted so far (shared by parallel stages).
#[derive(Debug, Default)]
pub struct Budget {
    used: AtomicUsize,
}

impl Budget {
    /// Variables for one expansion, looked up in `first`, then in `then`, and counted.
    pub fn meter<'a>(
        &'a self,
        first: &'a BTreeMap<String, String>,
        then: &'a BTreeMap<String, String>,
    ) -> Metered<'a> {
        Metered {
            budget: self,
            first,
            then,
            allowance: MAX_SUBSTITUTED.saturating_sub(self.used.load(Ordering::SeqCst)),
            spent: Cell::new(0),
        }
    }
}

/// The variables of one expansion, counting what they give (see [`Budget::meter`]).
#[derive(Debug)]
pub struct Metered<'a> {
    budget: &'a Budget,
    first: &'a BTreeMap<String, String>,
    then: &'a BTreeMap<String, String>,
    /// What this expansion may still spend.
    allowance: usize,
    spent: Cell<usize>,
}

impl Metered<'_> {
    /// Charges the build for this expansion; an error once the build is over its budget.
    ///
    /// Call it after the expansion and before using its result: past the allowance, values
    /// read as empty (so a hostile expansion ends quickly), and the result is wrong.
    pub fn charge(self) -> Result<(), String> {
        let spent = self.spent.get();
        let used = self
            .budget
            .used
            .fetch_add(spent, Ordering::SeqCst)
            .saturating_add(spent);
        if spent > self.allowance || used > MAX_SUBSTITUTED {
            return Err(format!(
                "variable substitution in this build is over {MAX_SUBSTITUTED} bytes (64 MiB, berth's limit): substitute large values fewer times, or make them in a RUN step"
            ));
        }
        Ok(())
    }
}

impl Env for Metered<'_> {
    fn get(&self, name: &str) -> Option<String> {
        let value = self.first.get(name).or_else(|| self.then.get(name))?;
        let spent = self.spent.get().saturating_add(value.len());
        self.spent.set(spent);
        if spent > self.allowance {
            return Some(String::new());
        }
        Some(value.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dockerfile::expand_word;

    #[test]
    fn first_wins_and_the_build_stops_past_its_budget() {
        let budget = Budget::default();
        let env = BTreeMap::from([("A".to_string(), "env".to_string())]);
        // A third of the budget a lookup: what a lookup gives counts even when the expansion
        // then fails (this one is over the growth limit of a word).
        let big = "x".repeat(MAX_SUBSTITUTED / 3);
        let args = BTreeMap::from([("A".to_string(), "arg".to_string()), ("B".to_string(), big)]);
        let vars = budget.meter(&env, &args);
        assert_eq!(expand_word("$A", &vars, '\\').unwrap(), "env");
        vars.charge().unwrap();
        let mut stopped = None;
        for round in 0..10 {
            let vars = budget.meter(&env, &args);
            let _ = expand_word("$B", &vars, '\\');
            if vars.charge().is_err() {
                stopped = Some(round);
                break;
            }
        }
        assert_eq!(stopped, Some(2));
    }
}
