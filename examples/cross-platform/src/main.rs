//! One WASI program, two jobs: at build time (`index DIR OUT`, a RUN step of the Dockerfile)
//! it counts the words of the poems into an index; at run time it prints that index. The
//! same bytes run on every platform berth runs on, so the output is the same everywhere.

use std::fs;

fn index(dir: &str, out: &str) -> std::io::Result<()> {
    let mut names: Vec<String> = fs::read_dir(dir)?
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let mut text = String::new();
    for name in names {
        let words = fs::read_to_string(format!("{dir}/{name}"))?
            .split_whitespace()
            .count();
        text.push_str(&format!("{name}: {words} words\n"));
    }
    fs::write(out, text)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let [_, cmd, dir, out] = args.as_slice() {
        if cmd == "index" {
            if let Err(e) = index(dir, out) {
                eprintln!("everywhere: indexing {dir} into {out}: {e}");
                std::process::exit(1);
            }
            return;
        }
    }
    match fs::read_to_string("/index.txt") {
        Ok(index) => print!("built once, run anywhere; the index a wasm RUN step made:\n{index}"),
        Err(e) => {
            eprintln!("everywhere: reading /index.txt: {e} (was the image built with its RUN step?)");
            std::process::exit(1);
        }
    }
}
