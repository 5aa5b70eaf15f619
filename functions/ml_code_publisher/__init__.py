"""The `Custom::MlCode` publisher; a package only so that tests can import it (the Lambda bundle is flat)."""
