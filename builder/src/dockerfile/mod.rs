//! Dockerfile parser: source text to a typed syntax tree, following BuildKit's behavior.
//!
//! [`parse`] reads directives, joins continuation lines, collects heredocs and turns each
//! logical line into an [`Instruction`] whose values are kept raw. Variable substitution is
//! a separate step ([`Instruction::expand`], [`expand_word`]) because it depends on the
//! build state (ARG and ENV values) at each instruction.

mod args;
mod directives;
mod document;
mod duration;
mod error;
mod expand;
mod flags;
mod heredoc;
mod instruction;
mod lexer;
mod mount;
mod parser;
mod pattern;
mod substitution;
mod suggest;

pub use directives::Directives;
pub use document::{Dockerfile, Stage};
pub use error::{ExpandError, ParseError};
pub use expand::{
    Env, MAX_GROWTH, MAX_NESTING, MAX_PATTERN_WORK, expand_heredoc, expand_word, expand_words,
};
pub use instruction::{
    ArgDecl, Command, CopySource, CopySpec, Healthcheck, HealthcheckOptions, Heredoc, Instruction,
    InstructionKind, Mount, MountKind, NetworkMode, SecurityMode,
};
pub use parser::{MAX_DOCKERFILE_SIZE, parse, too_large};
