//! A parsed Dockerfile and its build stages.

use super::directives::Directives;
use super::instruction::{Instruction, InstructionKind};

/// A parsed Dockerfile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    /// Parser directives from the top of the file.
    pub directives: Directives,
    /// Instructions in source order.
    pub instructions: Vec<Instruction>,
}

/// A build stage: a `FROM` and the instructions up to the next `FROM`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stage<'a> {
    /// The `FROM` instruction that starts the stage.
    pub from: &'a Instruction,
    /// Base image or earlier stage (raw).
    pub image: &'a str,
    /// Stage name (`AS name`), lowercased.
    pub name: Option<&'a str>,
    /// `--platform` (raw).
    pub platform: Option<&'a str>,
    /// The stage's instructions after its `FROM`.
    pub instructions: &'a [Instruction],
}

impl Dockerfile {
    /// ARGs before the first FROM, and the stages (each starting at a FROM).
    pub fn stages(&self) -> (Vec<&Instruction>, Vec<Stage<'_>>) {
        let starts: Vec<usize> = self
            .instructions
            .iter()
            .enumerate()
            .filter(|(_, i)| matches!(i.kind, InstructionKind::From { .. }))
            .map(|(index, _)| index)
            .collect();
        let first = starts.first().copied().unwrap_or(self.instructions.len());
        let global_args = self.instructions[..first].iter().collect();
        let stages = starts
            .iter()
            .enumerate()
            .filter_map(|(n, &start)| {
                let end = starts
                    .get(n + 1)
                    .copied()
                    .unwrap_or(self.instructions.len());
                let from = &self.instructions[start];
                let InstructionKind::From {
                    image,
                    name,
                    platform,
                } = &from.kind
                else {
                    return None;
                };
                Some(Stage {
                    from,
                    image,
                    name: name.as_deref(),
                    platform: platform.as_deref(),
                    instructions: &self.instructions[start + 1..end],
                })
            })
            .collect();
        (global_args, stages)
    }
}
