"""The training engine, the selection-model pretraining cache and the embedding engine."""
