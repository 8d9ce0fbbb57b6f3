use cachette::{Cache, cached, invalidate};

struct Repo {
    cache: Cache,
    name: String,
}

impl Repo {
    #[cached(cache = &self.cache)]
    async fn by_ref(&self, id: u64) -> String {
        format!("{}{id}", self.name)
    }

    #[cached(key = "repo:{self.name}:{id}", cache = &self.cache)]
    pub async fn templated(&self, id: u64) -> String {
        format!("{}{id}", self.name)
    }

    #[cached(timeout = 60)]
    pub(crate) async fn associated(id: u64) -> Self {
        Self { cache: Cache::memory(), name: id.to_string() }
    }
}

impl Clone for Repo {
    fn clone(&self) -> Self {
        Self { cache: self.cache.clone(), name: self.name.clone() }
    }
}

impl serde::Serialize for Repo {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.name.serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Repo {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(|name| Self { cache: Cache::memory(), name })
    }
}

async fn use_them(repo: &Repo) {
    let _ = repo.by_ref(1).await;
    let _ = repo.templated(2).await;
    let _ = Repo::associated(3).await;
    let _ = invalidate!(repo.by_ref(1)).await;
    let _ = invalidate!(Repo::templated(repo, 2)).await;
    let _ = invalidate!(Repo::associated(3)).await;
}

fn main() {
    let _ = use_them;
}
