use cachette::cached;

// Nothing in a plain `u32` can report an abandoned computation.
#[cached(hard_timeout = 500)]
async fn plain(id: u32) -> u32 {
    id
}

// A borrowed argument cannot outlive the call: no background refresh.
#[cached(stale = 60, soft_timeout = 200)]
async fn borrowed(name: &str) -> String {
    name.to_owned()
}

#[derive(Debug)]
struct MyError;

// `MyError` does not convert from `cachette::Error`.
#[cached(hard_timeout = 500)]
async fn unconvertible(id: u32) -> Result<u32, MyError> {
    Ok(id)
}

fn main() {}
