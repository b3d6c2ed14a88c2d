"""Replay the Pulumi programs against a real moto server: every AWS resource a program declares is created with the
boto3 call AWS's own API takes for it, so a wrong shape, a bad enum, an invalid policy document or a reference to
something that does not exist fails, where the mocks accept anything."""
