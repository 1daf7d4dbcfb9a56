//! Exits through `wasi:cli/exit.exit-with-code` with the code given as its argument (5 without
//! one): the only way a preview 2 component reports a code other than 0 or 1.

fn main() {
    let code = std::env::args()
        .nth(1)
        .map_or(5, |a| a.parse().expect("the exit code is 0 to 255"));
    wasip2::cli::exit::exit_with_code(code);
    unreachable!("exit-with-code returned");
}
