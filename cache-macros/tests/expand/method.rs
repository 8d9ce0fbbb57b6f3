use cachette::{Cache, cached};

pub struct Repo {
    cache: Cache,
}

impl Repo {
    #[cached(cache = &self.cache, unless = |name: &String| name.is_empty())]
    pub async fn name_of(&self, id: u64) -> String {
        id.to_string()
    }
}
