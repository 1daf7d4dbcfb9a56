//! Hello from WASI: prints a greeting, its arguments and one variable, like any CLI program.

fn main() {
    let name = std::env::var("NAME").unwrap_or_else(|_| "world".into());
    println!("Hello, {name}, from a WebAssembly module run by berth!");
    let args: Vec<String> = std::env::args().skip(1).collect();
    if !args.is_empty() {
        println!("arguments: {}", args.join(" "));
    }
}
