"""The tuning wing: watch, bench, plan and advise, built on vlaunch.api (not inside the launch core)."""
