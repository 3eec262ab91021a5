"""The storefront's pages: each module has `render()`."""
