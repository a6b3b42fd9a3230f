"""An example dropblock-bench plugin: a small, correct DropBlock and the record that registers it."""
