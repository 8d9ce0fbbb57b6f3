use cachette::{Cache, cached};
use std::sync::OnceLock;

pub struct AppState {
    pub cache: Cache,
}

fn reports() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(Cache::memory)
}

// Names no argument: the call borrows the cache.
#[cached(timeout = 60, key = "report:{id}", cache = reports())]
pub async fn report(id: u32) -> String {
    id.to_string()
}

// Borrows from an argument the body takes: the call holds its own handle.
#[cached(timeout = 60, key = "page:{id}", skip(state), cache = &state.cache)]
pub async fn page(state: AppState, id: u32) -> String {
    drop(state);
    id.to_string()
}
