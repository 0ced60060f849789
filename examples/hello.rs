//! A first conversation with valthree through the `redis` crate.
//!
//! ```sh
//! valthree serve &                      # s3 mode on ./valthree-data
//! cargo run --release --example hello   # or: VALTHREE_URL=redis://127.0.0.1:6380/ cargo run --release --example hello
//! ```

use redis::Commands;

fn main() -> redis::RedisResult<()> {
    let url = std::env::var("VALTHREE_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/".into());
    let mut con = redis::Client::open(url)?.get_connection()?;

    let _: () = con.set("greeting", "hello from valthree")?;
    let greeting: String = con.get("greeting")?;
    println!("GET greeting -> {greeting}");

    let visits: i64 = con.incr("visits", 1)?;
    println!("INCR visits  -> {visits}");

    // SET NX is an atomic test-and-set on every node of the cluster.
    let won: Option<String> = redis::cmd("SET").arg("leader").arg(std::process::id()).arg("NX").query(&mut con)?;
    println!("SET leader NX -> {}", if won.is_some() { "won" } else { "someone else holds it" });

    // Failures say whether the write certainly did not happen (TRYAGAIN) or might have (UNCERTAIN).
    match redis::cmd("INCR").arg("greeting").query::<i64>(&mut con) {
        Ok(n) => println!("unexpected: {n}"),
        Err(e) => println!("INCR greeting -> error {:?}: {}", e.code(), e.detail().unwrap_or_default()),
    }
    Ok(())
}
