-- CreateTable
CREATE TABLE "IngredientPackaging" (
    "id" TEXT NOT NULL,
    "ingredientId" TEXT NOT NULL,
    "label" TEXT NOT NULL,
    "amount" DOUBLE PRECISION NOT NULL,
    "unitCode" TEXT NOT NULL,
    "createdAt" TIMESTAMP(3) NOT NULL DEFAULT CURRENT_TIMESTAMP,

    CONSTRAINT "IngredientPackaging_pkey" PRIMARY KEY ("id")
);

-- CreateIndex
CREATE UNIQUE INDEX "IngredientPackaging_ingredientId_label_key" ON "IngredientPackaging"("ingredientId", "label");

-- AddForeignKey
ALTER TABLE "IngredientPackaging" ADD CONSTRAINT "IngredientPackaging_ingredientId_fkey" FOREIGN KEY ("ingredientId") REFERENCES "Ingredient"("id") ON DELETE CASCADE ON UPDATE CASCADE;

-- AddForeignKey
ALTER TABLE "IngredientPackaging" ADD CONSTRAINT "IngredientPackaging_unitCode_fkey" FOREIGN KEY ("unitCode") REFERENCES "Unit"("code") ON DELETE RESTRICT ON UPDATE CASCADE;
