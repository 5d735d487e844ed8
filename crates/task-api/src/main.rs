use service_kit::config::exit_on_error;
use task_api::{config::Config, startup::Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("task-api");
    let config = exit_on_error(Config::from_env());
    let result = match Application::build(config).await {
        Ok(app) => app.run_until_stopped().await,
        Err(e) => Err(e),
    };
    service_kit::telemetry::shutdown().await;
    result
}
