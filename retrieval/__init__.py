"""Embeddings, the chunk store, the per-user retriever, the answer chain, the LLM factory."""
