//! A WASI guest for the tests: each subcommand does one thing the tests check from outside.
//! Built by the tests with `rustc --target wasm32-wasip1` (a core module) and `wasm32-wasip2`
//! (a component).

use std::io::{Read, Write};
use std::process::exit;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let rest = &args[args.len().min(2)..];
    match args.get(1).map(String::as_str) {
        // Prints its argv, one per line.
        Some("args") => {
            for a in &args {
                println!("{a}");
            }
        }
        // Prints the named variables as KEY=VALUE (or KEY unset).
        Some("env") => {
            for k in rest {
                match std::env::var(k) {
                    Ok(v) => println!("{k}={v}"),
                    Err(_) => println!("{k} unset"),
                }
            }
        }
        Some("cwd") => println!("{}", std::env::current_dir().unwrap().display()),
        Some("exit") => exit(rest[0].parse().unwrap()),
        // Prints a file, or "error: ..." with exit 1.
        Some("cat") => match std::fs::read_to_string(&rest[0]) {
            Ok(s) => print!("{s}"),
            Err(e) => {
                println!("error: {e}");
                exit(1)
            }
        },
        // Writes rest[1] to the file rest[0].
        Some("write") => match std::fs::write(&rest[0], &rest[1]) {
            Ok(()) => println!("wrote {}", rest[0]),
            Err(e) => {
                println!("error: {e}");
                exit(1)
            }
        },
        // Copies the file rest[0] to rest[1].
        Some("cp") => match std::fs::copy(&rest[0], &rest[1]) {
            Ok(_) => println!("copied {}", rest[0]),
            Err(e) => {
                println!("error: {e}");
                exit(1)
            }
        },
        Some("rm") => match std::fs::remove_file(&rest[0]) {
            Ok(()) => println!("removed {}", rest[0]),
            Err(e) => {
                println!("error: {e}");
                exit(1)
            }
        },
        Some("exists") => println!("{}", std::path::Path::new(&rest[0]).exists()),
        Some("ls") => {
            let mut names: Vec<String> = std::fs::read_dir(&rest[0])
                .unwrap()
                .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            for n in names {
                println!("{n}");
            }
        }
        // Copies stdin to stdout.
        Some("stdin") => {
            let mut s = String::new();
            std::io::stdin().read_to_string(&mut s).unwrap();
            print!("{s}");
        }
        Some("stderr") => eprintln!("{}", rest.join(" ")),
        // Spins forever, never calling the host.
        Some("loop") => {
            println!("looping");
            std::io::stdout().flush().unwrap();
            let mut x: u64 = 0;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        // Sleeps in a host call for rest[0] seconds.
        Some("sleep") => {
            println!("sleeping");
            std::io::stdout().flush().unwrap();
            std::thread::sleep(std::time::Duration::from_secs(rest[0].parse().unwrap()));
        }
        // Allocates rest[0] MiB, touching every page.
        Some("hog") => {
            let mb: usize = rest[0].parse().unwrap();
            let mut v: Vec<Vec<u8>> = Vec::new();
            for i in 0..mb {
                v.push(vec![1u8; 1 << 20]);
                if i % 16 == 0 {
                    println!("{i} MiB");
                }
            }
            println!("held {mb} MiB");
        }
        Some("panic") => panic!("probe panicked on purpose"),
        other => {
            eprintln!("probe: unknown command {other:?}");
            exit(2)
        }
    }
}
