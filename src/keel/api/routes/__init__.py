"""The API's endpoints, one module per concern, each an `APIRouter` mounted under `/api/v1`."""
