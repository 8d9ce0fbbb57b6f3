use cachette::{cached, refresh};

#[cached]
async fn price(sku: u32) -> u32 {
    sku
}

async fn warm() {
    let _ = refresh!(42).await;
    let _ = refresh!(price(1), cache = 1).await;
}

fn main() {
    let _ = warm();
}
