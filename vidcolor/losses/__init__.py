"""Loss terms of the generator objective; ``objective.Objective`` combines them."""
