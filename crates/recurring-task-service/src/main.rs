use recurring_task_service::{config::Config, startup::Application};
use service_kit::config::exit_on_error;

/// mimalloc instead of the system allocator: under load glibc's malloc and free were about a
/// tenth of task-api's CPU (perf), and every service allocates per event and per request.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("recurring-task-service");
    let config = exit_on_error(Config::from_env());
    let result = match Application::build(config).await {
        Ok(app) => app.run_until_stopped().await,
        Err(e) => Err(e),
    };
    service_kit::telemetry::shutdown().await;
    result
}
