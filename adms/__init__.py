"""ADMS applications: functions over a network model and a measurement snapshot."""
