"""Evaluation: information measures, sample metrics, anomaly detection, tasks and compare."""
