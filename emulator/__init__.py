"""The local twin: the exported state machines on moto's Step Functions engine, with local SageMaker and Lambda."""
