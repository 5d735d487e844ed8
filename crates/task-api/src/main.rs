use service_kit::config::exit_on_error;
use task_api::{config::Config, startup::Application};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("task-api");
    let config = exit_on_error(Config::from_env());
    Application::build(config).await?.run_until_stopped().await
}
