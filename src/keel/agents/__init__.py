"""One module per role of the decision cycle. Every role is a plain function `node(state, ctx) -> update`."""
