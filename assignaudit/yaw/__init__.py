"""`assignaudit yaw`: yaw residuals, flips and duplicates on predictions."""
