use notification_service::{config::Config, startup::Application};
use service_kit::config::exit_on_error;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    service_kit::telemetry::init("notification-service");
    let config = exit_on_error(Config::from_env());
    Application::build(config).await?.run_until_stopped().await
}
