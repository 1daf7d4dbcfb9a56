//! Hot reload: a route's image named by a tag is looked up again every second; when the tag
//! points at another image (`berth build -t` the same name again, `berth pull`, `berth tag`),
//! the new image is loaded beside the old and takes the new requests. Requests in flight
//! finish on the function they started with, which is dropped after them.

use std::sync::Arc;
use std::time::Duration;

use crate::function::Loader;
use crate::server::Server;

/// How often tags are looked up.
pub const EVERY: Duration = Duration::from_secs(1);

/// Watches every route's image until the task is dropped.
pub async fn watch(server: Arc<Server>, loader: Arc<Loader>) {
    let mut last_error: Vec<Option<String>> = vec![None; server.slots.len()];
    let mut tick = tokio::time::interval(EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        for (i, slot) in server.slots.iter().enumerate() {
            let current = slot
                .function
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .image_id
                .clone();
            let config = slot.config.clone();
            let loader = loader.clone();
            let found = tokio::task::spawn_blocking(move || {
                let image = loader.store().find_image(&config.image).map_err(|e| {
                    format!("{}: looking up image {}: {e}", config.origin, config.image)
                })?;
                if current.as_ref() == Some(&image.id) {
                    return Ok(None);
                }
                loader
                    .load(&config, &image)
                    .map(Some)
                    .map_err(|e| e.to_string())
            })
            .await;
            match found {
                Ok(Ok(None)) => last_error[i] = None,
                Ok(Ok(Some(f))) => {
                    eprintln!(
                        "berth serve: route {}: image {} is now {} ({}); new requests go to it",
                        slot.config.route,
                        slot.config.image,
                        f.image_id.as_ref().map_or("", |d| d.short()),
                        f.kind
                    );
                    *slot.function.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(f);
                    last_error[i] = None;
                }
                Ok(Err(e)) => {
                    // Said once per new problem; the route keeps serving what it had.
                    if last_error[i].as_deref() != Some(e.as_str()) {
                        eprintln!("berth serve: {e}; still serving the image it had");
                        last_error[i] = Some(e);
                    }
                }
                Err(_) => {}
            }
        }
    }
}
