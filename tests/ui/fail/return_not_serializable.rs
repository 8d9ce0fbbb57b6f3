use cachette::cached;

#[derive(Clone)]
struct Report {
    lines: Vec<String>,
}

#[cached(timeout = 60)]
async fn report(user_id: u64) -> Report {
    Report { lines: vec![user_id.to_string()] }
}

#[cached(timeout = 60)]
async fn fallible(user_id: u64) -> Result<Report, std::io::Error> {
    Ok(Report { lines: vec![user_id.to_string()] })
}

fn main() {}
