from django.apps import AppConfig


class ForecastEngineConfig(AppConfig):
    name = "apps.forecasting.engine"
    label = "forecast_engine"
