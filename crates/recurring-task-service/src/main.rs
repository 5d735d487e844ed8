use recurring_task_service::{config::Config, startup::Application};
use service_kit::config::exit_on_error;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("recurring-task-service");
    let config = exit_on_error(Config::from_env());
    Application::build(config).await?.run_until_stopped().await
}
