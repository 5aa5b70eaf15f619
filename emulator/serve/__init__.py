"""The served twin: moto's HTTP server in front of the local twin, and what AWS's services do by themselves."""
